#!/usr/bin/env bash
# Starts a local RabbitMQ broker for the AMQP transport's tests, unless one already answers on
# 127.0.0.1:5672. Idempotent: safe to run before every test run.
#
# Installs Debian's rabbitmq-server when it is missing (needs root), starts it detached and
# waits until it accepts connections. Exits non-zero if no broker could be started, so a test
# runner that calls it fails loudly instead of skipping the AMQP tests.
set -euo pipefail

HOST=127.0.0.1
PORT=5672

answers() {
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

if answers; then
    echo "start_rabbitmq: a broker already answers on $HOST:$PORT"
    exit 0
fi

if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "start_rabbitmq: rabbitmq-server is not installed and we are not root" >&2
        exit 1
    fi
    echo "start_rabbitmq: installing rabbitmq-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # Debian's package starts the service through systemd/invoke-rc.d where it can; in a
    # container there is none, which is fine: we start it ourselves below.
    apt-get install -y -q rabbitmq-server
fi
export PATH="$PATH:/usr/sbin:/usr/lib/rabbitmq/bin"

# The package's postinst may already have started a node; start one only if none runs.
if ! rabbitmqctl -q status >/dev/null 2>&1; then
    echo "start_rabbitmq: starting rabbitmq-server"
    rabbitmq-server -detached
fi
# await_startup waits for the node's boot to finish; it fails if the node is not up at all, so
# give a detached node a moment to appear first.
for _ in $(seq 1 60); do
    if rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1; then
        break
    fi
    sleep 1
done
for _ in $(seq 1 60); do
    if answers; then
        echo "start_rabbitmq: broker up on $HOST:$PORT"
        exit 0
    fi
    sleep 1
done
echo "start_rabbitmq: no broker answers on $HOST:$PORT" >&2
exit 1
