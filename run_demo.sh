#!/usr/bin/env bash
# The main job in one command: builds, starts two TCP consumers, runs a producer for a bounded
# number of tasks (DEMO_TASKS, default 40), shows its log and summary, and stops the consumers
# it started, also when interrupted. No broker needed.
set -euo pipefail
source "$(dirname "$0")/scripts/common.sh"

tasks=${DEMO_TASKS:-40}
"$repo_root/scripts/fetch_model.sh"
build_apps

pids=()
stop_consumers() {
    for pid in "${pids[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
    done
    wait "${pids[@]}" 2>/dev/null || true
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
