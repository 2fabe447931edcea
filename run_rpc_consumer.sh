#!/usr/bin/env bash
# Starts a TCP consumer: ./run_rpc_consumer.sh 9000 [--workers 2 ...]
# Serves fibonacci_generator and neural_analyzer on 127.0.0.1:PORT until Ctrl-C.
set -euo pipefail
source "$(dirname "$0")/scripts/common.sh"

port=9000
if [[ ${1:-} =~ ^[0-9]+$ ]]; then
    port=$1
    shift
fi
"$repo_root/scripts/fetch_model.sh"
build_apps
exec "$bin_dir/consumer" --transport tcp --port "$port" "$@"
