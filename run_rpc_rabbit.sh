#!/usr/bin/env bash
# The RabbitMQ pair:
#   ./run_rpc_rabbit.sh server                      serves the procedures through the broker
#   ./run_rpc_rabbit.sh client [procedure args...]  one call (default fibonacci_generator.calculate 90)
# The broker is $AMQP_URL, else the local one (started here when nothing answers on 5672).
set -euo pipefail
source "$(dirname "$0")/scripts/common.sh"

role=${1:-}
shift || true
case "$role" in
    server)
        if [[ -z ${AMQP_URL:-}${RABBITMQ_URL:-} ]]; then
            "$repo_root/scripts/start_rabbitmq.sh"
        fi
        "$repo_root/scripts/fetch_model.sh"
        build_apps
        exec "$bin_dir/consumer" --transport amqp "$@"
        ;;
    client)
        build_apps
        if (($# == 0)); then
            set -- fibonacci_generator.calculate 90
        fi
        exec "$bin_dir/call" --transport amqp "$@"
        ;;
    *)
        echo "usage: $0 server [consumer options] | client [procedure args...]" >&2
        exit 2
        ;;
esac
