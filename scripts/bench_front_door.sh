#!/usr/bin/env bash
# The front door's benchmark (docs/benchmarks.md): `hey` (Debian's package, installed here)
# against, in the same run and on the same TCP consumers (workers=1, --no-model):
#   - the HTTP floor: the same server stack answering a constant (examples/http_floor.rs);
#   - the front door: `producer --listen` in its default configuration;
#   - the RPC floor: direct Pool calls, no HTTP (examples/rpc_floor.rs).
# Cheap calls (F(90)) at 64 connections and at 1; then overload: heavy calls (F($HEAVY_N)) at
# twice the consumers' capacity (the larger of the direct calls' rate and the front door's
# peak), goodput and the p99 of admitted calls against the peak and the unloaded p99, measured
# twice: one call at a time back to back (hey, 1 connection), and the way the overload is
# offered, at a tenth of the capacity (oha). The
# overload is offered at a steady rate by `oha` (installed here with cargo, version
# $OHA_VERSION, into target/tools) from $OHA_CONNECTIONS (128) connections, its latencies
# corrected for coordinated omission (measured from when each request was due): `hey -q` starts
# all its connections' requests on the same tick, bursts that queue behind one another
# whatever the admission does (at half the capacity, hey's bursts of 16 already gave a p50 of
# 13 ms against 2 ms unloaded; oha's steady rate gave 2.2 ms).
# The overload is measured twice: on the two consumers sharing core 1, and on one consumer
# alone on core 1 (the same capacity: one worker fills the core; a call then takes its own
# time at load, as on a machine of its own, instead of sharing the core with the other's).
# $DOOR_FLAGS (empty) are passed to every producer; the overload is also offered to a producer
# whose places are the consumers' workers, so that no call waits at a consumer behind another
# ($TUNED_FLAGS_TWO, `--max-in-flight 2`; $TUNED_FLAGS_ONE, `--max-in-flight 1`).
#
#   ./scripts/bench_front_door.sh [SECONDS]      (each measurement; default 10)
set -euo pipefail
source "$(dirname "$0")/common.sh"

seconds=${1:-10}
heavy_n=${HEAVY_N:-100000}
# LAYOUT=split (the default) gives the consumers core 1 and everything in front of them (the
# producers, the floors and hey) core 0, as a deployment gives consumers machines of their
# own: the load generator and the refusals then take no CPU from the consumers' work.
# LAYOUT=shared lets every process use both cores (the figures before 2026-12-02 12:00 UTC).
layout=${LAYOUT:-split}
back=()
front=()
if [[ $layout == split ]]; then
    back=(taskset -c 1)
    front=(taskset -c 0)
fi
"$repo_root/scripts/install_debian.sh" hey hey
oha_version=${OHA_VERSION:-1.16.0}
tools="${CARGO_TARGET_DIR:-$repo_root/target}/tools"
if ! "$tools/bin/oha" --version 2>/dev/null | grep -q "$oha_version"; then
    echo "installing oha $oha_version (cargo install, a few minutes once)..." >&2
    cargo install --quiet --locked oha --version "$oha_version" --root "$tools"
fi
oha="$tools/bin/oha"
# oha opens its connections one per request until it has them all. With 512, it stalls
# itself 8-18 ms as it passes about 256 and 512 (at 190 and 380 ms at 1,300 requests/s), also
# against the HTTP floor, whose whole-run p99 that took from 0.31 to 0.47-0.52 ms; with 64 or
# 128 it does not (docs/benchmarks.md, HTTP front door, session 17). The overload of one
# consumer kept at most 32-39 requests in flight, so 128 leave it three times that.
oha_connections=${OHA_CONNECTIONS:-128}
build_apps
(cd "$repo_root" && cargo build --release --quiet -p rpc-apps --examples)
examples="$bin_dir/examples"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# consumer: starts a consumer on the back's core; its port in $started.
consumer() {
    started=$(free_port)
    RUST_LOG=warn "${back[@]}" "$bin_dir/consumer" --transport tcp --port "$started" --no-model \
        > /dev/null 2>&1 &
    pids+=($!)
}
# producer FLAGS PORT...: starts a producer with the front door (FLAGS, one word list) on
# the front's core, calling the consumers on PORT...; its HTTP port in $started.
producer() {
    local flags=$1
    shift
    started=$(free_port)
    # shellcheck disable=SC2086
    RUST_LOG=warn "${front[@]}" "$bin_dir/producer" --transport tcp "$@" --listen "127.0.0.1:$started" \
        $flags > /dev/null 2>&1 &
    pids+=($!)
}

ports=()
for _ in 1 2; do
    consumer
    ports+=("$started")
done
consumer
solo=$started
for port in "${ports[@]}" "$solo"; do wait_for_port "$port" 60; done
door_flags=${DOOR_FLAGS:-}
producer "$door_flags" "${ports[@]}"
door=$started
floor=$(free_port)
"${front[@]}" "$examples/http_floor" "127.0.0.1:$floor" 2>/dev/null &
pids+=($!)
wait_for_port "$door" 30
wait_for_port "$floor" 30

csv=$(mktemp)
# table NAME SECONDS FORMAT CSV: prints a table row from a CSV file of hey's (FORMAT hey) or
# oha's (FORMAT oha): requests/s, 200s, 503s, other answers, p50 and p99 of the 200s (ms),
# and their p99 without the first second's requests.
table() {
    python3 - "$@" <<'PY'
import csv, sys
name, seconds, form, path = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
status, took, start = (
    ("status-code", "response-time", "offset")
    if form == "hey"
    else ("status", "request-duration", "request-start")
)
rows = list(csv.DictReader(open(path)))
ok = sorted(float(r[took]) for r in rows if r[status] == "200")
# The same without the first second: connections being opened, a line not yet standing.
later = sorted(float(r[took]) for r in rows if r[status] == "200" and float(r[start]) >= 1.0)
busy = sum(1 for r in rows if r[status] == "503")
other = len(rows) - len(ok) - busy
q = lambda p, v: v[min(len(v) - 1, int(p * len(v)))] * 1e3 if v else float("nan")
print(f"| {name} | {len(rows) / seconds:,.0f} | {len(ok) / seconds:,.0f} | {busy:,} | {other:,} | {q(0.5, ok):.3f} | {q(0.99, ok):.3f} | {q(0.99, later):.3f} |")
PY
}
header="| run | requests/s | 200/s (goodput) | 503 | other errors | p50 of 200s (ms) | p99 of 200s (ms) | p99 after the first second (ms) |"
rule="|---|---|---|---|---|---|---|---|"
# load NAME PORT BODY HEY_ARGS...: one hey (closed loop), one table row.
load() {
    local name=$1 port=$2 body=$3
    shift 3
    "${front[@]}" hey -z "${seconds}s" "$@" -m POST -T application/json -d "$body" -o csv \
        "http://127.0.0.1:$port/v1/call/fibonacci_generator.calculate" > "$csv"
    table "$name" "$seconds" hey "$csv"
}
# overload NAME PORT BODY RATE: RATE requests/s at a steady rate from $oha_connections
# connections (oha, latencies from when each request was due); one table row.
overload() {
    local name=$1 port=$2 body=$3 rate=$4
    "${front[@]}" "$oha" --no-tui -z "${seconds}s" -c "$oha_connections" -q "$rate" --latency-correction \
        -m POST -T application/json -d "$body" --output-format csv -o "$csv" \
        "http://127.0.0.1:$port/v1/call/fibonacci_generator.calculate"
    table "$name" "$seconds" oha "$csv"
}
# overload_section TITLE TUNED_FLAGS PORT...: the consumers' capacity (direct calls), then
# unloaded, peak and twice the capacity against a producer in its default configuration and
# one with TUNED_FLAGS, both calling the consumers on PORT... "Capacity" is the larger of the
# direct calls' rate and the default producer's peak, so that a slow measurement of either
# does not make the overload a lighter one.
overload_section() {
    local title=$1 tuned_flags=$2
    shift 2
    local default tuned capacity_line capacity offered="" peak
    producer "$door_flags" "$@"
    default=$started
    producer "$tuned_flags" "$@"
    tuned=$started
    wait_for_port "$default" 30
    wait_for_port "$tuned" 30
    capacity_line=$("${front[@]}" "$examples/rpc_floor" "$seconds" 8 "$heavy_n" "$@")
    capacity=$(echo "$capacity_line" | sed -E 's/.*= ([0-9]+) calls\/s.*/\1/')
    echo
    echo "Overload, $title: F($heavy_n); the consumers' capacity is $capacity calls/s"
    echo "(\`$capacity_line\`, 8 direct callers); twice the capacity is twice the larger of that"
    echo "and the default producer's peak."
    echo
    echo "$header"
    echo "$rule"
    local flags port row
    for flags in default tuned; do
        port=$default
        label=""
        if [[ $flags == tuned ]]; then
            port=$tuned
            label=", $tuned_flags"
        fi
        load "unloaded (1 connection)$label" "$port" "$heavy" -c 1
        # The unloaded latency as the overload's generator sees it: the same oha, steady rate
        # and connections, at a tenth of the capacity (the consumers idle 9 tenths of the
        # time, and each request finds the processes asleep, as the overload's find them busy).
        overload "unloaded, steady rate ($((capacity / 10)) requests/s offered, $oha_connections connections)$label" "$port" "$heavy" "$((capacity / 10))"
        row=$(load "peak (8 connections, no pause)$label" "$port" "$heavy" -c 8)
        echo "$row"
        if [[ -z $offered ]]; then
            peak=$(echo "$row" | awk -F'|' '{ gsub(/[ ,]/, "", $4); print $4 }')
            offered=$((2 * (peak > capacity ? peak : capacity)))
            # The generator's own latency at that rate: the same oha against the HTTP floor.
            overload "HTTP floor at the same rate ($offered requests/s offered, $oha_connections connections)" "$floor" "$heavy" "$offered"
        fi
        overload "2x capacity ($offered requests/s offered, $oha_connections connections)$label" "$port" "$heavy" "$offered"
    done
}

echo "## Front door, $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg), layout $layout"
echo
echo "$header"
echo "$rule"
cheap='{"n": 90}'
load "HTTP floor, 64 connections" "$floor" "$cheap" -c 64
load "front door, F(90), 64 connections" "$door" "$cheap" -c 64
load "HTTP floor, 1 connection" "$floor" "$cheap" -c 1
load "front door, F(90), 1 connection" "$door" "$cheap" -c 1
echo
echo "RPC floor (direct Pool calls, JSON, same consumers):"
echo
echo '```'
"${front[@]}" "$examples/rpc_floor" "$seconds" 64 90 "${ports[@]}"
"${front[@]}" "$examples/rpc_floor" "$seconds" 1 90 "${ports[@]}"
echo '```'
heavy="{\"n\": $heavy_n}"
overload_section "the two consumers (sharing the back's core)" "${TUNED_FLAGS_TWO:---max-in-flight 2}" "${ports[@]}"
overload_section "one consumer alone on the back's core" "${TUNED_FLAGS_ONE:---max-in-flight 1}" "$solo"
rm -f "$csv"
