//! [`runtime`] and [`current_thread_runtime`]: the tokio runtimes tests and benchmarks run on.

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

/// A current-thread tokio runtime, I/O and timers enabled: the consumer app's, and what a
/// test that calls from one thread runs on.
///
/// # Panics
/// When the runtime cannot be built: a test cannot go on without it.
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
