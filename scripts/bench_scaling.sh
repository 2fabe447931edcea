#!/usr/bin/env bash
# The scaling figure: calls/s of a producer sending Fibonacci-only tasks as fast as the
# consumers take them (--interval 0 --mix fibonacci), to one consumer and to two (workers=1
# each), over TCP and over AMQP. Prints a markdown table for docs/benchmarks.md.
#
#   ./scripts/bench_scaling.sh [TASKS] [FIBONACCI_MAX]
#
# TASKS defaults to 4000 per run; FIBONACCI_MAX (default 10000, the seed's tasks) raises the
# largest n, for tasks heavy enough that the consumers' work, not the calls, dominates.
set -euo pipefail
source "$(dirname "$0")/common.sh"

tasks=${1:-4000}
fibonacci_max=${2:-10000}
build_apps
"$repo_root/scripts/start_rabbitmq.sh" > /dev/null

pids=()
stop_consumers() {
    for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    wait "${pids[@]}" 2>/dev/null || true
    pids=()
}
trap stop_consumers EXIT

# start_consumers TRANSPORT N: starts N consumers (workers=1), sets $ports for TCP.
start_consumers() {
    local transport=$1 n=$2
    ports=()
    for _ in $(seq "$n"); do
        local port
        port=$(free_port)
        RUST_LOG=warn "$bin_dir/consumer" --transport "$transport" --port "$port" --no-model \
            --workers 1 2>/dev/null &
        pids+=($!)
        ports+=("$port")
    done
    if [[ $transport == tcp ]]; then
        for port in "${ports[@]}"; do wait_for_port "$port" 30; done
    else
        sleep 2
    fi
}

# rate TRANSPORT N: calls/s of one producer run against N fresh consumers.
rate() {
    local transport=$1 n=$2 targets=()
    start_consumers "$transport" "$n"
    [[ $transport == tcp ]] && targets=("${ports[@]}")
    local summary
    summary=$(RUST_LOG=warn "$bin_dir/producer" --transport "$transport" "${targets[@]}" \
        --interval 0 --mix fibonacci --fibonacci-max "$fibonacci_max" --count "$tasks" --seed 3 --concurrency 16 2>/dev/null)
    stop_consumers
    echo "$summary" | sed -n 's/.*(\([0-9.]*\) calls\/s).*/\1/p' | head -1
}

echo "| transport | 1 consumer (calls/s) | 2 consumers (calls/s) | ratio |"
echo "| --- | --- | --- | --- |"
for transport in tcp amqp; do
    one=$(rate "$transport" 1)
    two=$(rate "$transport" 2)
    ratio=$(python3 -c "print(f'{$two / $one:.2f}')")
    echo "| $transport | $one | $two | $ratio |"
done
