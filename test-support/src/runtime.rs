//! [`runtime`]: the tokio runtime tests and benchmarks run on.

/// A multi-threaded tokio runtime with `workers` worker threads, I/O and timers enabled.
///
/// # Panics
/// When the runtime cannot be built (no threads left): a test cannot go on without it.
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
