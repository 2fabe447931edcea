#!/usr/bin/env bash
# The batching figure (issue 14): one consumer on this machine serving
# neural_analyzer.polarity, batched (the default, at most 8 sentences a forward pass) against
# today's design without batching (--max-batch 1: each worker one sentence a pass), both with
# two workers (one a core), in the same run. Each end is its own process: the real `consumer`
# binary over TCP, fed by the real `producer` with polarity tasks only.
#
#   ./scripts/bench_batch.sh [TASKS] [ROUNDS]
#
# Per round and design: sentences/s at saturation (TASKS tasks, 32 in flight), then the p50 of
# 300 calls made one at a time. Rounds alternate the order of the two designs. Prints a
# markdown table for docs/benchmarks.md.
set -euo pipefail
source "$(dirname "$0")/common.sh"

tasks=${1:-1200}
rounds=${2:-2}
build_apps
"$repo_root/scripts/fetch_model.sh" > /dev/null

consumer_pid=
stop_consumer() {
    if [[ -n $consumer_pid ]]; then
        kill -INT "$consumer_pid" 2>/dev/null || true
        wait "$consumer_pid" 2>/dev/null || true
        consumer_pid=
    fi
}
trap stop_consumer EXIT

# produce PORT COUNT CONCURRENCY: the producer's summary line and its table.
produce() {
    RUST_LOG=warn "$bin_dir/producer" "$1" --interval 0 --mix polarity --seed 7 \
        --count "$2" --concurrency "$3" 2>/dev/null
}

# measure MAX_BATCH: prints "sentences/s p50_ms" for a fresh consumer with --max-batch.
measure() {
    local port
    port=$(free_port)
    RUST_LOG=warn "$bin_dir/consumer" --port "$port" --workers 2 --max-batch "$1" \
        2>/dev/null &
    consumer_pid=$!
    wait_for_port "$port" 60
    produce "$port" 64 32 > /dev/null # warm-up: the model's first passes
    local rate p50
    rate=$(produce "$port" "$tasks" 32 | sed -n 's/.*(\([0-9.]*\) calls\/s).*/\1/p' | head -1)
    p50=$(produce "$port" 300 1 | awk '$1 == "neural_analyzer.polarity" { print $4 }')
    stop_consumer
    echo "$rate $p50"
}

echo "| round | design | sentences/s | one at a time, p50 (ms) |"
echo "| --- | --- | ---: | ---: |"
for round in $(seq "$rounds"); do
    if ((round % 2)); then order=(1 8); else order=(8 1); fi
    declare -A rate p50
    for max in "${order[@]}"; do
        read -r "rate[$max]" "p50[$max]" < <(measure "$max")
    done
    echo "| $round | one sentence a pass (--max-batch 1) | ${rate[1]} | ${p50[1]} |"
    echo "| $round | batches of up to 8 (default) | ${rate[8]} | ${p50[8]} |"
    ratio=$(python3 -c "print(f'{${rate[8]} / ${rate[1]}:.2f}')")
    delta=$(python3 -c "print(f'{${p50[8]} - ${p50[1]}:+.2f}')")
    echo "| $round | **batched / one a pass** | **${ratio}x** | **${delta} ms** |"
done
