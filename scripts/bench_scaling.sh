#!/usr/bin/env bash
# The scaling figure: calls/s of a producer sending Fibonacci-only tasks as fast as the
# consumers take them (--interval 0 --mix fibonacci), to one consumer and to two (workers=1
# each), over TCP and over AMQP. Prints a markdown table for docs/benchmarks.md, and a second
# one that says where the machine's cores went during each run: how busy the whole machine
# was, and the CPU (in cores) of the broker, each consumer and the producer. A second consumer
# can only add calls/s if the first run left cores idle for it.
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

# cpu_ticks PID...: the CPU ticks (user + system) each process has used so far.
cpu_ticks() {
    local pid
    for pid in "$@"; do awk '{print $14 + $15}' "/proc/$pid/stat"; done
}

# machine_ticks: the busy and idle ticks of all the machine's cores so far.
machine_ticks() {
    awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat
}

# rate TRANSPORT N: calls/s of one producer run against N fresh consumers; appends the run's
# CPU row to $cpu_file (rate runs in a subshell: a variable would not come back).
rate() {
    local transport=$1 n=$2 targets=() broker=()
    start_consumers "$transport" "$n"
    [[ $transport == tcp ]] && targets=("${ports[@]}")
    [[ $transport == amqp ]] && broker=("$(pgrep -o -f beam.smp)")
    local before consumers_before broker_before started
    before=$(machine_ticks)
    consumers_before=$(cpu_ticks "${pids[@]}")
    broker_before=$(cpu_ticks "${broker[@]}")
    started=$(date +%s.%N)
    # The producer under Python's wait, for its own CPU time (RUSAGE_CHILDREN).
    local summary
    summary=$(RUST_LOG=warn python3 -c '
import resource, subprocess, sys
run = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(run.stdout)
print(f"producer_cpu {usage.ru_utime + usage.ru_stime}")
' "$bin_dir/producer" --transport "$transport" "${targets[@]}" --interval 0 --mix fibonacci \
        --fibonacci-max "$fibonacci_max" --count "$tasks" --seed 3 --concurrency 16)
    local ended after consumers_after broker_after
    ended=$(date +%s.%N)
    after=$(machine_ticks)
    consumers_after=$(cpu_ticks "${pids[@]}")
    broker_after=$(cpu_ticks "${broker[@]}")
    stop_consumers
    local calls producer_cpu
    calls=$(echo "$summary" | sed -n 's/.*(\([0-9.]*\) calls\/s).*/\1/p' | head -1)
    producer_cpu=$(echo "$summary" | sed -n 's/^producer_cpu //p')
    (python3 - "$transport" "$n" "$calls" "$started" "$ended" "$before" "$after" \
        "$consumers_before" "$consumers_after" "$broker_before" "$broker_after" "$producer_cpu" <<'PY'
import os, sys
(transport, n, calls, started, ended, before, after, c0, c1, b0, b1, producer) = sys.argv[1:]
secs = float(ended) - float(started)
tick = os.sysconf("SC_CLK_TCK")
busy0, idle0 = map(int, before.split())
busy1, idle1 = map(int, after.split())
busy = (busy1 - busy0) / max(1, (busy1 - busy0) + (idle1 - idle0))
cores = lambda a, b: (int(b) - int(a)) / tick / secs
consumers = ", ".join(f"{cores(a, b):.2f}" for a, b in zip(c0.split(), c1.split()))
broker = f"{cores(b0, b1):.2f}" if b0.strip() else "-"
print(f"| {transport} | {n} | {calls} | {busy:.0%} | {broker} | {consumers} | "
      f"{float(producer) / secs:.2f} |")
PY
    ) >> "$cpu_file"
    echo "$calls"
}

cpu_file=$(mktemp)
echo "| transport | 1 consumer (calls/s) | 2 consumers (calls/s) | ratio |"
echo "| --- | --- | --- | --- |"
for transport in tcp amqp; do
    one=$(rate "$transport" 1)
    two=$(rate "$transport" 2)
    ratio=$(python3 -c "print(f'{$two / $one:.2f}')")
    echo "| $transport | $one | $two | $ratio |"
done

echo
echo "Where the cores went (cores = CPU seconds a second; the machine has $(nproc)):"
echo
echo "| transport | consumers | calls/s | machine busy | broker | each consumer | producer |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
cat "$cpu_file"
rm -f "$cpu_file"
