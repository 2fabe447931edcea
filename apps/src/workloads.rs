//! The two workloads consumers exist to run, as handlers.

mod big_number;
mod fibonacci;
mod polarity;

pub use big_number::BigNumber;
pub use fibonacci::{FibonacciGenerator, FibonacciGeneratorClient, MAX_N};
pub use polarity::{NeuralAnalyzer, NeuralAnalyzerClient};

/// A registry with the workloads, running `workers` tasks at once: Fibonacci, and the neural
/// network when its model is given.
pub fn registry(workers: usize, analyzer: Option<NeuralAnalyzer>) -> rpc_core::Registry {
    let mut registry = rpc_core::Registry::new().with_workers(workers);
    registry.register(FibonacciGenerator);
    if let Some(analyzer) = analyzer {
        registry.register(analyzer);
    }
    registry
}
