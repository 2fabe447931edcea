#!/usr/bin/env bash
# The soak run (not part of ./run_rpc_tests.sh): for each transport, two consumer processes,
# 64 calls in flight for RPC_SOAK_SECS (default 60) seconds, one consumer restarted every
# RPC_SOAK_RESTART_SECS (default 10) seconds, by turns with SIGINT and SIGKILL. Prints one line
# per transport: calls, errors by kind, latency p50/p99/max, restarts, the consumers' peak RSS.
# Fails if a call was lost or answered wrongly.
#
#   ./scripts/soak.sh                                   # both transports, 60 s each
#   RPC_SOAK_SECS=20 RPC_SOAK_TRANSPORTS=tcp ./scripts/soak.sh
#
# Other knobs: RPC_SOAK_CALLS (a cap on the calls per transport). Starts RabbitMQ when needed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ",${RPC_SOAK_TRANSPORTS:-tcp,amqp}," == *",amqp,"* ]]; then
    ./scripts/start_rabbitmq.sh
fi
cargo test --release -p rpc-apps --test soak -- --ignored --nocapture 2>&1 |
    grep -v '^\[consumer\]'
