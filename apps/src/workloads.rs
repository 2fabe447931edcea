//! The two workloads consumers exist to run, as handlers.

mod big_number;
mod fibonacci;
mod polarity;

pub use big_number::BigNumber;
pub use fibonacci::{FibonacciGenerator, FibonacciGeneratorClient, MAX_N};
pub use polarity::{NeuralAnalyzer, NeuralAnalyzerClient};

/// A registry with both workloads, running `workers` tasks at once.
pub fn registry(workers: usize) -> rpc_core::Registry {
    let mut registry = rpc_core::Registry::new().with_workers(workers);
    registry
        .register(FibonacciGenerator)
        .register(NeuralAnalyzer);
    registry
}
