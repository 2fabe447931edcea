//! Where a forward pass runs: on the calling thread, as the only worker of its own rayon pool.
//!
//! candle's layer norm (and a few other operations) split their rows with rayon's `par_chunks`.
//! Called from a thread that is not a rayon worker, that hands every such operation to
//! rayon's global pool and sleeps until a pool thread has done it: 13 hand-offs per pass of
//! BERT-small, each a wake-up the scheduler has to grant. On a busy machine those wake-ups
//! dominate (measured: two one-thread processes at batch 8 got 7-30% of a core each, the
//! rest of their time waiting for their own pool thread). Running the pass inside a pool
//! that has the calling thread as its worker makes every `par_chunks` run inline.
//!
//! rayon leaks the registry (its small bookkeeping) of a pool built with `use_current_thread`
//! when the pool is dropped at the thread's exit, so threads that call the analyzer should
//! live long (a worker pool); the crate docs say so.

use std::cell::OnceCell;

thread_local! {
    /// This thread's own pool, built on first use; `None` when this thread already belongs to
    /// a rayon pool (then its operations run there) or the pool could not be built.
    static OWN_POOL: OnceCell<Option<rayon::ThreadPool>> = const { OnceCell::new() };
}

/// Runs `f` on the calling thread as a worker of a rayon pool of its own, of as many threads
/// as candle's matrix products use (`RAYON_NUM_THREADS`, else the physical cores): with one,
/// everything runs inline on the calling thread.
pub(crate) fn on_this_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    OWN_POOL.with(|cell| {
        let pool = cell.get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(candle_core::utils::get_num_threads())
                .use_current_thread()
                .build()
                .ok()
        });
        match pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    })
}
