//! [`Start`]: whether a call handed to the registry has started, and taking it back before.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where a call handed to [`Registry::dispatch_withdrawable`](crate::Registry) stands: waiting
/// for a worker, started, or taken back by its transport before it started.
///
/// A transport that must give back the requests it has not started (an AMQP consumer that
/// stops leaves them in the queue for other consumers) would otherwise hold each one until a
/// worker is free, and a worker that finishes a call would wait for the transport to hand it
/// the next. With a `Start` it hands them over early instead, so that the next call is queued
/// when a worker finishes the last, and takes back any that no worker took yet:
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use rpc_core::{Call, Encoding, Registry, RpcError, Start};
///
/// struct Sleeper;
///
/// #[rpc_core::handler]
/// impl Sleeper {
///     /// Sleeps `ms` milliseconds.
///     pub fn nap(ms: u64) -> u64 {
///         std::thread::sleep(Duration::from_millis(ms));
///         ms
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut registry = Registry::new(); // one worker
/// registry.register(Sleeper);
/// let registry = Arc::new(registry);
/// let nap = |ms: u64| Call::new("sleeper.nap", Encoding::Json, format!("{{\"ms\": {ms}}}").into_bytes());
/// let never = tokio_util::sync::CancellationToken::new;
///
/// let (first, second) = (Start::new(), Start::new());
/// let running = tokio::spawn({
///     let (registry, first, call) = (registry.clone(), first.clone(), nap(200));
///     async move { registry.dispatch_withdrawable(1, call, never(), first).await }
/// });
/// let queued = tokio::spawn({
///     let (registry, second, call) = (registry.clone(), second.clone(), nap(1));
///     async move { registry.dispatch_withdrawable(2, call, never(), second).await }
/// });
/// tokio::time::sleep(Duration::from_millis(50)).await;
/// assert!(!first.withdraw(), "the worker runs it: too late");
/// assert!(second.withdraw(), "still queued behind it: taken back, never run");
/// assert_eq!(queued.await.unwrap(), Err(RpcError::Cancelled));
/// assert_eq!(running.await.unwrap().unwrap(), b"200");
/// assert!(first.started_at().is_some() && second.started_at().is_none());
/// assert!(first.ran_for().is_some_and(|ran| ran >= Duration::from_millis(200)));
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Start(Arc<Mutex<State>>);

#[derive(Clone, Copy, Debug, Default)]
enum State {
    #[default]
    Waiting,
    Started(Instant),
    /// Ran for `ran` from `started`.
    Finished {
        started: Instant,
        ran: Duration,
    },
    Withdrawn,
}

impl Start {
    /// A call that has not started.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the call back unless it started: `true` when it will never run. Its dispatch
    /// then answers [`RpcError::Cancelled`](crate::RpcError::Cancelled), and may be dropped.
    pub fn withdraw(&self) -> bool {
        let mut state = self.lock();
        match *state {
            State::Waiting | State::Withdrawn => {
                *state = State::Withdrawn;
                true
            }
            State::Started(_) | State::Finished { .. } => false,
        }
    }

    /// When the call started, if it did: when a worker took it (a synchronous procedure) or
    /// when it was first polled (an `async` one).
    pub fn started_at(&self) -> Option<Instant> {
        match *self.lock() {
            State::Started(at) | State::Finished { started: at, .. } => Some(at),
            State::Waiting | State::Withdrawn => None,
        }
    }

    /// How long the call ran, once it finished: from its start to its result, measured where
    /// it ran (a synchronous procedure on its worker thread), so not counting the time its
    /// result then waits for the transport's task to be polled, which grows with the
    /// transport's own load.
    pub fn ran_for(&self) -> Option<Duration> {
        match *self.lock() {
            State::Finished { ran, .. } => Some(ran),
            State::Waiting | State::Started(_) | State::Withdrawn => None,
        }
    }

    /// Marks the call started at `now`: `false` when it was withdrawn, and must not run.
    pub(crate) fn begin(&self, now: Instant) -> bool {
        let mut state = self.lock();
        match *state {
            State::Waiting => {
                *state = State::Started(now);
                true
            }
            State::Started(_) | State::Finished { .. } => true,
            State::Withdrawn => false,
        }
    }

    /// Marks the started call finished after running for `ran`.
    pub(crate) fn finish(&self, ran: Duration) {
        let mut state = self.lock();
        if let State::Started(started) = *state {
            *state = State::Finished { started, ran };
        }
    }
}

impl fmt::Debug for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Start").field(&*self.lock()).finish()
    }
}
