//! [`WakeOnce`]: a future whose polls queue synchronous calls without waking a worker for
//! each; the worker is woken once, when the poll ends.
//!
//! A worker that has run dry sleeps, and the call queued next wakes it. On the project's
//! virtual machines that wake-up costs the waking thread (the runtime's) 3-4 µs: in a
//! profile of the TCP echo bench, 9% of the consumer's samples were the runtime's wake-ups.
//! A consumer's connection task reads a burst of requests in one poll: queued one by one, they
//! woke the worker again each time it had caught up with them; queued under [`WakeOnce`],
//! they wake it at most once per poll (docs/benchmarks.md, TCP echo, session 12).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::workers::Shared;

thread_local! {
    /// While a [`WakeOnce`] is being polled on this thread: the worker queues owed a wake-up.
    static OWED: RefCell<Option<Vec<Arc<Shared>>>> = const { RefCell::new(None) };
}

/// Whether the current thread is inside a [`WakeOnce`] poll; if so, `shared` is owed a
/// wake-up at its end instead of now.
pub(crate) fn defer(shared: &Arc<Shared>) -> bool {
    let owe = |owed: &RefCell<Option<Vec<Arc<Shared>>>>| match owed.borrow_mut().as_mut() {
        Some(queues) => {
            if !queues.iter().any(|queue| Arc::ptr_eq(queue, shared)) {
                queues.push(shared.clone());
            }
            true
        }
        None => false,
    };
    // A thread being torn down has no scope: the worker is woken now.
    OWED.try_with(owe).unwrap_or(false)
}

/// Wraps `future` so that the synchronous calls it queues on a [`crate::Registry`] during
/// one poll wake a waiting worker once, when the poll ends, rather than once each.
///
/// For a transport's connection task, which reads several requests in one poll: the calls
/// still start in order and none waits for more than the rest of that poll.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// /// Reads the requests a client sent and runs them on a `Registry`.
/// async fn connection() {}
///
/// let task = tokio::spawn(rpc_core::wake_once(connection()));
/// task.await.expect("the connection's task");
/// # }
/// ```
pub fn wake_once<F: Future>(future: F) -> WakeOnce<F> {
    WakeOnce {
        future: Box::pin(future),
    }
}

/// The future [`wake_once`] returns.
pub struct WakeOnce<F> {
    future: Pin<Box<F>>,
}

impl<F: Future> Future for WakeOnce<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let outer = OWED
            .try_with(|owed| owed.borrow_mut().replace(Vec::new()))
            .unwrap_or(None);
        let _wake = WakeAtEnd { outer };
        self.future.as_mut().poll(cx)
    }
}

/// Restores the enclosing scope and wakes the owed workers, also when the poll panics.
struct WakeAtEnd {
    outer: Option<Vec<Arc<Shared>>>,
}

impl Drop for WakeAtEnd {
    fn drop(&mut self) {
        let outer = self.outer.take();
        let owed = OWED
            .try_with(|owed| std::mem::replace(&mut *owed.borrow_mut(), outer))
            .unwrap_or(None);
        for shared in owed.into_iter().flatten() {
            shared.wake_if_waiting();
        }
    }
}
