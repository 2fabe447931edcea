#!/usr/bin/env bash
# Starts a producer over TCP: ./run_rpc_producer.sh 9000 9001 [--count 40 --interval 0.2 ...]
# Sends the seed's random tasks to those consumers until Ctrl-C (or --count), then summarises.
set -euo pipefail
source "$(dirname "$0")/scripts/common.sh"

build_apps
exec "$bin_dir/producer" --transport tcp "$@"
