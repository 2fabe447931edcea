# Shared by rabbitmq_cluster.sh and rabbitmq_tls.sh: one extra RabbitMQ node beside the usual
# broker, from Debian's package, with its own node name, ports and data directory. Sourced,
# not run; needs root (the node runs as the `rabbitmq` user, whose Erlang cookie every node
# and rabbitmqctl share).

# launch_node DIR NODENAME [VAR=VALUE ...]: starts the node detached, its data, logs and pid
# file under DIR (DIR/enabled_plugins must exist), with the given RABBITMQ_* variables (ports,
# a config file) in an otherwise empty environment.
launch_node() {
    local dir=$1 node=$2
    shift 2
    mkdir -p "$dir/mnesia" "$dir/log"
    chown -R rabbitmq:rabbitmq "$dir"
    rm -f "$dir/pid"
    runuser -u rabbitmq -- env -i \
        PATH="$PATH" HOME=/var/lib/rabbitmq LANG=C.UTF-8 \
        RABBITMQ_NODENAME="$node" \
        RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_PID_FILE="$dir/pid" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
        RABBITMQ_CONF_ENV_FILE=/dev/null \
        "$@" \
        rabbitmq-server -detached > "$dir/log/startup.log" 2>&1
}

# await_node_started DIR NODENAME LIMIT: waits until the node has booted. await_startup fails
# at once until the node has registered, so it is retried within LIMIT seconds; then the
# node's log is shown and this fails.
await_node_started() {
    local dir=$1 node=$2 deadline=$((SECONDS + $3))
    until rabbitmqctl -q -n "$node" await_startup --timeout 10 >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "rabbitmq node $node did not start in $3 s; its log:" >&2
            tail -n 30 "$dir"/log/*.log >&2 || true
            return 1
        fi
        sleep 1
    done
}
