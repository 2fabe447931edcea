#!/usr/bin/env bash
# The main job in one command: builds, starts two TCP consumers, runs a producer for a bounded
# number of tasks (DEMO_TASKS, default 40), shows its log and summary; then starts the
# producer as a web service (--listen) on the same consumers, makes a few HTTP calls with curl
# and prints the dashboard's address (kept up DEMO_HOLD seconds, default 0). Stops everything
# it started, also when interrupted. No broker needed.
set -euo pipefail
source "$(dirname "$0")/scripts/common.sh"

tasks=${DEMO_TASKS:-40}
"$repo_root/scripts/fetch_model.sh"
build_apps

pids=()
# The last started stops first: the web producer before the consumers it calls.
stop_consumers() {
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -INT "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
}
trap stop_consumers EXIT
trap 'exit 130' INT TERM

ports=()
for _ in 1 2; do
    port=$(free_port)
    RUST_LOG=${RUST_LOG:-info} "$bin_dir/consumer" --transport tcp --port "$port" \
        > >(sed -u "s/^/[consumer $port] /" >&2) 2>&1 &
    pids+=($!)
    ports+=("$port")
done
for port in "${ports[@]}"; do
    wait_for_port "$port" 60
done
echo "consumers on ports ${ports[*]}; producer sends $tasks tasks" >&2
"$bin_dir/producer" --transport tcp "${ports[@]}" --count "$tasks" --interval 0.1 --seed 1

http_port=$(free_port)
RUST_LOG=warn "$bin_dir/producer" --transport tcp "${ports[@]}" --listen "127.0.0.1:$http_port" \
    > /dev/null 2> >(sed -u "s/^/[web producer] /" >&2) &
pids+=($!)
wait_for_port "$http_port" 30
base="http://127.0.0.1:$http_port"
echo >&2
echo "the producer as a web service at $base (dashboard: $base/)" >&2
show() {
    echo "\$ curl $*" >&2
    curl -s -w '   (HTTP %{http_code})\n' "$@" >&2
}
call="$base/v1/call"
show -X POST "$call/fibonacci_generator.calculate" -d '{"n": 90}'
show -X POST "$call/neural_analyzer.polarity" -d '{"sentence": "What a lovely morning"}'
show -X POST "$call/fibonacci_generator.calculate" -d '{"n": "ninety"}'
show -X POST "$call/fibonacci_generator.calculate" -H 'x-timeout: 0.05' -d '{"n": 10000000}'
show -X POST "$call/no_such.procedure" -d '{}'
show "$base/readyz"
echo "dashboard: $base/   metrics: $base/metrics" >&2
sleep "${DEMO_HOLD:-0}"
