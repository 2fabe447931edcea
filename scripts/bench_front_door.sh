#!/usr/bin/env bash
# The front door's benchmark (docs/benchmarks.md): `hey` (Debian's package, installed here)
# against, in the same run and on the same two TCP consumers (workers=1, --no-model):
#   - the HTTP floor: the same server stack answering a constant (examples/http_floor.rs);
#   - the front door: `producer --listen` in its default configuration;
#   - the RPC floor: direct Pool calls, no HTTP (examples/rpc_floor.rs).
# Cheap calls (F(90)) at 64 connections and at 1; then overload: heavy calls (F($HEAVY_N)) at
# twice the consumers' measured capacity, goodput and the p99 of admitted calls against the
# peak and the unloaded p99. The overload is offered by $SPREAD hey processes (32) started a
# fraction of hey's tick apart, each with 512/$SPREAD connections: one hey's `-q` starts all
# its connections' requests on the same tick, in bursts no admission with a short wait line
# can take; spread over 32 phases the arrivals come close to a steady rate.
# $DOOR_FLAGS (empty) are passed to the producer; the overload is also offered to a second
# producer with $TUNED_FLAGS (`--max-queue-time 0.005`, a shorter queue-time target).
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
build_apps
(cd "$repo_root" && cargo build --release --quiet -p rpc-apps --examples)
examples="$bin_dir/examples"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

ports=()
for _ in 1 2; do
    port=$(free_port)
    RUST_LOG=warn "${back[@]}" "$bin_dir/consumer" --transport tcp --port "$port" --no-model 2>/dev/null &
    pids+=($!)
    ports+=("$port")
done
for port in "${ports[@]}"; do wait_for_port "$port" 60; done
door=$(free_port)
# shellcheck disable=SC2086
RUST_LOG=warn "${front[@]}" "$bin_dir/producer" --transport tcp "${ports[@]}" --listen "127.0.0.1:$door" \
    ${DOOR_FLAGS:-} > /dev/null 2>&1 &
pids+=($!)
tuned=$(free_port)
tuned_flags=${TUNED_FLAGS:---max-queue-time 0.005}
# shellcheck disable=SC2086
RUST_LOG=warn "${front[@]}" "$bin_dir/producer" --transport tcp "${ports[@]}" --listen "127.0.0.1:$tuned" \
    $tuned_flags > /dev/null 2>&1 &
pids+=($!)
floor=$(free_port)
"${front[@]}" "$examples/http_floor" "127.0.0.1:$floor" 2>/dev/null &
pids+=($!)
wait_for_port "$door" 30
wait_for_port "$floor" 30
wait_for_port "$tuned" 30

csv=$(mktemp)
spread_dir=$(mktemp -d)
# table NAME SECONDS CSV...: prints a table row from hey's CSV files: requests/s, 200s, 503s,
# other answers, p50 and p99 of the 200s (ms).
table() {
    python3 - "$@" <<'PY'
import csv, sys
name, seconds, paths = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
rows = [r for path in paths for r in csv.DictReader(open(path))]
ok = sorted(float(r["response-time"]) for r in rows if r["status-code"] == "200")
busy = sum(1 for r in rows if r["status-code"] == "503")
other = len(rows) - len(ok) - busy
q = lambda p: ok[min(len(ok) - 1, int(p * len(ok)))] * 1e3 if ok else float("nan")
print(f"| {name} | {len(rows) / seconds:,.0f} | {len(ok) / seconds:,.0f} | {busy:,} | {other:,} | {q(0.5):.3f} | {q(0.99):.3f} |")
PY
}
# load NAME PORT BODY HEY_ARGS...: one hey, one table row.
load() {
    local name=$1 port=$2 body=$3
    shift 3
    "${front[@]}" hey -z "${seconds}s" "$@" -m POST -T application/json -d "$body" -o csv \
        "http://127.0.0.1:$port/v1/call/fibonacci_generator.calculate" > "$csv"
    table "$name" "$seconds" "$csv"
}
# overload NAME PORT BODY RATE: RATE requests/s from 512 connections in $SPREAD hey processes
# started 1/$SPREAD of a tick apart; one table row.
overload() {
    local name=$1 port=$2 body=$3 rate=$4 spread=${SPREAD:-32}
    local per_connection tick
    per_connection=$(python3 -c "print(round($rate / 512, 3))")
    tick=$(python3 -c "print(1 / $per_connection / $spread)")
    local hey_pids=()
    for i in $(seq 1 "$spread"); do
        "${front[@]}" hey -z "${seconds}s" -c $((512 / spread)) -q "$per_connection" -m POST \
            -T application/json -d "$body" -o csv \
            "http://127.0.0.1:$port/v1/call/fibonacci_generator.calculate" \
            > "$spread_dir/$i.csv" &
        hey_pids+=($!)
        sleep "$tick"
    done
    wait "${hey_pids[@]}"
    table "$name" "$seconds" "$spread_dir"/*.csv
}

echo "## Front door, $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg), layout $layout"
echo
echo "| run | requests/s | 200/s (goodput) | 503 | other errors | p50 of 200s (ms) | p99 of 200s (ms) |"
echo "|---|---|---|---|---|---|---|"
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
capacity_line=$("${front[@]}" "$examples/rpc_floor" "$seconds" 8 "$heavy_n" "${ports[@]}")
echo "$capacity_line   (heavy calls, F($heavy_n), 8 callers: the consumers' capacity)"
echo '```'
capacity=$(echo "$capacity_line" | sed -E 's/.*= ([0-9]+) calls\/s.*/\1/')
echo
echo "Overload: F($heavy_n); the consumers' capacity is $capacity calls/s."
echo
echo "| run | requests/s | 200/s (goodput) | 503 | other errors | p50 of 200s (ms) | p99 of 200s (ms) |"
echo "|---|---|---|---|---|---|---|"
heavy="{\"n\": $heavy_n}"
load "unloaded (1 connection)" "$door" "$heavy" -c 1
load "peak (8 connections, no pause)" "$door" "$heavy" -c 8
# Twice the capacity, offered at a steady rate from 512 connections.
offered=$((2 * capacity))
overload "2x capacity ($offered requests/s offered, 512 connections)" "$door" "$heavy" "$offered"
load "unloaded (1 connection), $tuned_flags" "$tuned" "$heavy" -c 1
load "peak (8 connections, no pause), $tuned_flags" "$tuned" "$heavy" -c 8
overload "2x capacity, $tuned_flags" "$tuned" "$heavy" "$offered"
rm -rf "$csv" "$spread_dir"
