#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, beside the usual broker on 5672, from the
# Debian package that scripts/start_rabbitmq.sh installs. For the AMQP transport's cluster
# tests (transport-amqp/tests/cluster.rs) and for trying failover by hand.
#
#   scripts/rabbitmq_cluster.sh start          start nodes 1-3, join 2 and 3 to 1, wait
#   scripts/rabbitmq_cluster.sh stop           stop every node, wait for each process, remove
#                                              the data (always safe to run)
#   scripts/rabbitmq_cluster.sh urls           the AMQP URLs, comma-separated (--amqp-url)
#   scripts/rabbitmq_cluster.sh kill N         SIGKILL node N (its process, by its pid file)
#   scripts/rabbitmq_cluster.sh stop-node N    stop node N gracefully, wait for its process
#   scripts/rabbitmq_cluster.sh start-node N   start node N again (it rejoins by itself)
#   scripts/rabbitmq_cluster.sh leader QUEUE   the node number leading quorum queue QUEUE
#   scripts/rabbitmq_cluster.sh lead QUEUE N   move the leadership of quorum queue QUEUE (vhost
#                                              /) to node N, wait until N leads it
#
# Each node is `rpc-cN@<host>` with AMQP port 5680+N, distribution port 25680+N, its own data,
# log and pid file under $RPC_CLUSTER_DIR (default /tmp/rpc-rabbitmq-cluster), an empty
# enabled-plugins file, and runs as the `rabbitmq` user, whose Erlang cookie
# (/var/lib/rabbitmq/.erlang.cookie) all nodes and rabbitmqctl share. Needs root, as
# start_rabbitmq.sh when it installs. Nodes are found by their pid files, never by name.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/rabbitmq_node.sh"
export PATH="$PATH:/usr/sbin:/usr/lib/rabbitmq/bin"

BASE="${RPC_CLUSTER_DIR:-/tmp/rpc-rabbitmq-cluster}"
HOST="$(hostname -s)"
NODES=(1 2 3)
START_LIMIT=120 # seconds for a node to boot
STOP_LIMIT=60   # seconds for a node's process to exit

node_name() { echo "rpc-c$1@$HOST"; }
amqp_port() { echo $((5680 + $1)); }
node_dir() { echo "$BASE/node$1"; }

say() { echo "rabbitmq_cluster: $*" >&2; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        say "run as root (the nodes run as the rabbitmq user)"
        exit 1
    fi
}

ctl() { rabbitmqctl -q -n "$(node_name "$1")" "${@:2}"; }

pid_of() {
    local file
    file="$(node_dir "$1")/pid"
    [ -s "$file" ] && cat "$file"
}

alive() {
    local pid
    pid="$(pid_of "$1" 2>/dev/null)" || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# Starts node N's Erlang VM, detached, as the rabbitmq user.
launch() {
    local n=$1 dir
    dir="$(node_dir "$n")"
    mkdir -p "$dir"
    echo '[].' > "$dir/enabled_plugins"
    launch_node "$dir" "$(node_name "$n")" \
        RABBITMQ_NODE_PORT="$(amqp_port "$n")" RABBITMQ_DIST_PORT=$((25680 + n))
}

await_node() { await_node_started "$(node_dir "$1")" "$(node_name "$1")" "$START_LIMIT"; }

# Waits until node N's process (by its pid file) has exited; SIGKILL after the limit.
await_exit() {
    local n=$1 pid deadline=$((SECONDS + STOP_LIMIT))
    pid="$(pid_of "$n" 2>/dev/null)" || return 0
    [ -n "$pid" ] || return 0
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            say "node $n (pid $pid) still runs after ${STOP_LIMIT} s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 0.2
    done
}

start() {
    need_root
    [ -r /var/lib/rabbitmq/.erlang.cookie ] || {
        say "no /var/lib/rabbitmq/.erlang.cookie (run scripts/start_rabbitmq.sh first)"
        exit 1
    }
    stop_all >/dev/null 2>&1 || true
    local began=$SECONDS
    for n in "${NODES[@]}"; do launch "$n"; done
    for n in "${NODES[@]}"; do await_node "$n"; done
    for n in "${NODES[@]:1}"; do
        ctl "$n" stop_app
        ctl "$n" join_cluster "$(node_name 1)"
        ctl "$n" start_app
        await_node "$n"
    done
    local running
    running="$(ctl 1 cluster_status --formatter json | python3 -c \
        'import json, sys; print(len(json.load(sys.stdin)["running_nodes"]))')"
    if [ "$running" != "${#NODES[@]}" ]; then
        say "only $running of ${#NODES[@]} nodes running"
        exit 1
    fi
    say "3 nodes up and joined in $((SECONDS - began)) s: $(urls)"
}

stop_all() {
    for n in "${NODES[@]}"; do
        if alive "$n"; then
            ctl "$n" stop >/dev/null 2>&1 || true
        fi
    done
    for n in "${NODES[@]}"; do await_exit "$n"; done
    rm -rf "$BASE"
    say "stopped and removed"
}

urls() {
    local list=()
    for n in "${NODES[@]}"; do
        list+=("amqp://guest:guest@127.0.0.1:$(amqp_port "$n")/%2f")
    done
    (
        IFS=,
        echo "${list[*]}"
    )
}

# The node number whose name `rabbitmqctl list_queues name leader` gives for QUEUE. Asked of
# each running node in turn and retried for a minute: a node that has just restarted may
# answer "queue(s) unresponsive" while its queues recover.
leader() {
    local queue=$1 name="" deadline=$((SECONDS + 60))
    while [ -z "$name" ]; do
        for n in "${NODES[@]}"; do
            alive "$n" || continue
            name="$(ctl "$n" list_queues name leader --timeout 10 --formatter json 2>/dev/null |
                python3 -c 'import json, sys
q = sys.argv[1]
print(next((r["leader"] for r in json.load(sys.stdin) if r["name"] == q), ""))' \
                    "$queue" 2>/dev/null)" || name=""
            [ -n "$name" ] && break
        done
        if [ -z "$name" ]; then
            if ((SECONDS >= deadline)); then
                say "no node could say who leads $queue"
                return 1
            fi
            sleep 1
        fi
    done
    for n in "${NODES[@]}"; do
        if [ "$name" = "$(node_name "$n")" ]; then
            echo "$n"
            return 0
        fi
    done
    say "no node leads $queue (leader: $name)"
    return 1
}

# Moves the leadership of quorum queue QUEUE to node N (RabbitMQ 3.10 has no command for one
# queue: rabbit_quorum_queue:transfer_leadership through `eval`), then waits until the
# cluster says N leads it.
lead() {
    local queue=$1 n=$2 deadline=$((SECONDS + 60))
    until [ "$(leader "$queue")" = "$n" ]; do
        if ((SECONDS >= deadline)); then
            say "node $n does not lead $queue after 60 s"
            return 1
        fi
        ctl "$n" eval "{ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<\"/\">>, queue, <<\"$queue\">>)), rabbit_quorum_queue:transfer_leadership(Q, '$(node_name "$n")')." >&2 || true
        sleep 1
    done
    say "node $n leads $queue"
}

node_arg() {
    case "${1:-}" in
    1 | 2 | 3) echo "$1" ;;
    *)
        say "node number 1, 2 or 3 expected, got '${1:-}'"
        exit 2
        ;;
    esac
}

case "${1:-}" in
start) start ;;
stop) need_root && stop_all ;;
urls) urls ;;
kill)
    n="$(node_arg "${2:-}")"
    pid="$(pid_of "$n")" || { say "node $n has no pid file"; exit 1; }
    kill -KILL "$pid"
    await_exit "$n"
    say "node $n (pid $pid) killed"
    ;;
stop-node)
    n="$(node_arg "${2:-}")"
    ctl "$n" stop
    await_exit "$n"
    say "node $n stopped"
    ;;
start-node)
    need_root
    n="$(node_arg "${2:-}")"
    launch "$n"
    await_node "$n"
    say "node $n started"
    ;;
leader) leader "${2:?a queue name}" ;;
lead) lead "${2:?a queue name}" "$(node_arg "${3:-}")" ;;
*)
    sed -n '2,22p' "$0" >&2
    exit 2
    ;;
esac
