#!/usr/bin/env bash
# Runs the whole test suite on this machine: the conformance suite against every transport,
# each crate's own tests, the compile-fail tests of #[handler] and the doc examples.
#
# It prepares what the tests need first (each step does nothing when already done).
# Extra arguments go to `cargo test`, e.g. `./run_rpc_tests.sh -p rpc-core`.
set -euo pipefail
cd "$(dirname "$0")"

# Release: the run scripts build release too (one build serves both), and the neural network
# is 60 times slower unoptimised.
cargo test --release --workspace "$@"
