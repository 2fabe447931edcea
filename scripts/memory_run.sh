#!/usr/bin/env bash
# memory_run.sh [SECONDS]: the producer at full speed for SECONDS (default 600) and its
# resident memory every 30 s: two TCP consumers, the producer's task generator with no pause
# (cheap Fibonacci calls) and, beside it, `hey` calling the HTTP front door with 16
# connections. Prints one line per sample and the change from the one-minute mark to the end.
set -euo pipefail
source "$(dirname "$0")/common.sh"

seconds=${1:-600}
"$repo_root/scripts/install_debian.sh" hey hey
build_apps

pids=()
# The producer (and hey) stop first, so that the consumers answer what it still holds.
cleanup() {
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -INT "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
}
trap cleanup EXIT

ports=()
for _ in 1 2; do
    port=$(free_port)
    RUST_LOG=warn "$bin_dir/consumer" --transport tcp --port "$port" --no-model &
    pids+=($!)
    ports+=("$port")
done
for port in "${ports[@]}"; do wait_for_port "$port" 60; done
http_port=$(free_port)
RUST_LOG=warn "$bin_dir/producer" --transport tcp "${ports[@]}" --listen "127.0.0.1:$http_port" \
    --generate --interval 0 --mix fibonacci --fibonacci-max 1000 > /dev/null &
producer=$!
pids+=("$producer")
wait_for_port "$http_port" 30
hey -z "${seconds}s" -c 16 -m POST -T application/json -d '{"n": 90}' \
    "http://127.0.0.1:$http_port/v1/call/fibonacci_generator.calculate" > /tmp/memory_run_hey.txt &
pids+=($!)

rss() { awk '/VmRSS/ {print $2}' "/proc/$producer/status"; }
start=$SECONDS
at_minute=""
while ((SECONDS - start < seconds)); do
    sleep 30
    now=$(rss)
    elapsed=$((SECONDS - start))
    ((elapsed >= 60)) && [ -z "$at_minute" ] && at_minute=$now
    calls=$(curl -s "http://127.0.0.1:$http_port/metrics" |
        awk '/^rpc_producer_calls_total/ {s += $NF} END {printf "%d", s}')
    echo "t=${elapsed}s producer RSS $((now / 1024)) MiB ($now kB), calls so far $calls"
done
end=$(rss)
echo "after one minute: $at_minute kB; at the end: $end kB; change: $(((end - at_minute))) kB"
grep -E "Requests/sec|Status code|\[200\]|\[503\]" /tmp/memory_run_hey.txt || true
