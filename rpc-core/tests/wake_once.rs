//! [`rpc_core::wake_once`]: the synchronous calls a poll queues wake a waiting worker when the
//! poll ends, not as each is queued; without it, a call starts at once.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use rpc_core::{wake_once, Call, Encoding, Registry};
use tokio_util::sync::CancellationToken;

/// Counts the calls that started.
struct Starts {
    count: Arc<AtomicU64>,
}

#[rpc_core::handler]
impl Starts {
    /// Counts itself, on a worker.
    pub fn count(&self) -> u64 {
        self.count.fetch_add(1, Ordering::SeqCst) + 1
    }
}

fn call() -> Call {
    Call::new("starts.count", Encoding::Json, b"{}".to_vec())
}

/// How many calls had started once a poll had queued one and then held its thread for
/// 200 ms; the call's answer is checked too. `wrap` runs that poll under [`wake_once`].
async fn started_during_the_poll(wrap: fn(TestPoll) -> TestPoll) -> u64 {
    let count = Arc::new(AtomicU64::new(0));
    let mut registry = Registry::new().with_workers(1);
    registry.register(Starts {
        count: count.clone(),
    });
    // Starts the worker, then lets it run dry and wait for the next call.
    let first = registry.dispatch(0, call(), CancellationToken::new()).await;
    assert_eq!(first, Ok(b"1".to_vec()));
    tokio::time::sleep(Duration::from_millis(50)).await;

    let registry = &registry;
    let count = &count;
    let one_poll = Box::pin(async move {
        let mut second = pin!(registry.dispatch(1, call(), CancellationToken::new()));
        // A worker woken at once, on another core, may answer before this poll of the call
        // returns: the answer is kept then, and the call counts as started.
        let mut answered_at_once = None;
        poll_fn(|cx| {
            if let Poll::Ready(answer) = second.as_mut().poll(cx) {
                answered_at_once = Some(answer);
            }
            Poll::Ready(())
        })
        .await;
        // Still the same poll: the thread is held, not handed back to the runtime.
        std::thread::sleep(Duration::from_millis(200));
        let started = count.load(Ordering::SeqCst) - 1;
        let answer = match answered_at_once {
            Some(answer) => answer,
            None => second.await,
        };
        assert_eq!(answer, Ok(b"2".to_vec()), "the call still runs");
        started
    });
    wrap(one_poll).await
}

type TestPoll<'a> = std::pin::Pin<Box<dyn Future<Output = u64> + 'a>>;

#[tokio::test]
async fn a_call_queued_under_wake_once_starts_when_the_poll_ends() {
    let started = started_during_the_poll(|poll| Box::pin(wake_once(poll))).await;
    assert_eq!(started, 0, "the worker was woken before the poll ended");
}

#[tokio::test]
async fn a_call_queued_without_it_starts_at_once() {
    let started = started_during_the_poll(|poll| poll).await;
    assert_eq!(
        started, 1,
        "the worker was not woken when the call was queued"
    );
}
