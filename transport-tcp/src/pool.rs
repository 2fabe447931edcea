//! The producer's [`Pool`]: one [`Transport`] over many consumers, balanced by least
//! outstanding calls, with calls retried when their connection breaks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};

use async_trait::async_trait;
use rpc_core::{deadline_after, Answer, Call, RpcError, Transport};
use tokio::sync::Notify;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;

use crate::connection::{Connection, Outcome};
use crate::{supervisor, PoolConfig};

/// A [`Transport`] over several consumers, each reached on one multiplexed connection.
///
/// - **Capacity**: each consumer says how many calls it runs at once (its `workers`) when the
///   pool connects. A call goes to the consumer with the fewest outstanding calls for its
///   capacity; each consumer holds at most `capacity + queued_per_consumer` calls, and calls
///   beyond that wait here, so that a slow task on one consumer never holds up work that
///   another could do.
/// - **Faults**: a consumer that refuses connections or breaks one is out of rotation and
///   probed back with exponential backoff (`backoff_min` to `backoff_max`); it rejoins as soon
///   as a probe succeeds. With no consumer up, a call waits at most `no_consumer_wait`, then
///   fails with [`RpcError::NoConsumer`].
/// - **At-least-once**: a call whose connection broke before its reply is sent again, to
///   another consumer when one is up, at most `max_retries` times. The consumer that lost
///   the connection may have run it already: procedures called through a pool should be
///   safe to run twice.
/// - **Deadlines**: a call's timeout counts from [`Transport::call`]; the consumer is sent
///   what is left of it, a call whose deadline passes while it waits here is never sent, and
///   the caller gets [`RpcError::DeadlineExceeded`] on time. A dropped call frees its place at
///   once; its late reply is discarded.
///
/// Cloning is cheap and shares the connections; the last clone dropped closes them.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    started: Once,
    _stop: DropGuard,
}

/// What the pool and its supervisors share.
pub(crate) struct Shared {
    pub(crate) addrs: Vec<String>,
    pub(crate) config: PoolConfig,
    pub(crate) stop: CancellationToken,
    state: Mutex<State>,
    /// Woken when a place frees up or a consumer comes up or goes down.
    changed: Notify,
    /// Calls waiting on `changed`: when none, a freed place wakes nobody and costs nothing.
    waiting: AtomicUsize,
}

struct State {
    consumers: Vec<Consumer>,
    /// Where the next search starts, so that ties go round the consumers.
    next: usize,
}

#[derive(Default)]
struct Consumer {
    connection: Option<Arc<Connection>>,
    capacity: usize,
    outstanding: usize,
    completed: u64,
    retried: u64,
    last_error: Option<String>,
}

/// One consumer as the pool sees it, from [`Pool::consumers`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerStatus {
    /// The address it was given as.
    pub addr: String,
    /// Whether it is in rotation (connected).
    pub up: bool,
    /// Its capacity, as it said when it last connected (0 before that).
    pub capacity: usize,
    /// Calls sent to it and not answered yet.
    pub outstanding: usize,
    /// Calls it answered (results and remote errors alike).
    pub completed: u64,
    /// Calls lost with a connection to it and sent again.
    pub retried: u64,
    /// Why it was last unreachable, if it was.
    pub last_error: Option<String>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("consumers", &self.consumers())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool over `addrs`: `host:port`, or a bare port meaning `127.0.0.1:port`.
    ///
    /// Connecting happens in the background, started here when called inside a tokio runtime,
    /// otherwise at the first call; calls wait for the first consumer to come up.
    ///
    /// # Errors
    /// [`RpcError::NoConsumer`] when `addrs` is empty.
    pub fn new<I, A>(addrs: I, config: PoolConfig) -> Result<Self, RpcError>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<str>,
    {
        let addrs: Vec<String> = addrs.into_iter().map(|a| normalize(a.as_ref())).collect();
        if addrs.is_empty() {
            return Err(RpcError::NoConsumer("no consumer address given".into()));
        }
        let stop = CancellationToken::new();
        let consumers = addrs.iter().map(|_| Consumer::default()).collect();
        let shared = Arc::new(Shared {
            addrs,
            config,
            stop: stop.clone(),
            state: Mutex::new(State { consumers, next: 0 }),
            changed: Notify::new(),
            waiting: AtomicUsize::new(0),
        });
        let pool = Self {
            inner: Arc::new(Inner {
                shared,
                started: Once::new(),
                _stop: stop.drop_guard(),
            }),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            pool.start();
        }
        Ok(pool)
    }

    /// The consumers, in the order given, as the pool sees them now.
    pub fn consumers(&self) -> Vec<ConsumerStatus> {
        let shared = &self.inner.shared;
        let state = shared.lock();
        shared
            .addrs
            .iter()
            .zip(&state.consumers)
            .map(|(addr, c)| ConsumerStatus {
                addr: addr.clone(),
                up: c.connection.is_some(),
                capacity: c.capacity,
                outstanding: c.outstanding,
                completed: c.completed,
                retried: c.retried,
                last_error: c.last_error.clone(),
            })
            .collect()
    }

    fn start(&self) {
        self.inner.started.call_once(|| {
            for index in 0..self.inner.shared.addrs.len() {
                tokio::spawn(supervisor::supervise(self.inner.shared.clone(), index));
            }
        });
    }

    /// A place on the least loaded consumer that is up, waiting for one when all are full or
    /// down; the flag says whether it waited.
    async fn acquire(
        &self,
        deadline: Instant,
    ) -> Result<(Place<'_>, Arc<Connection>, bool), RpcError> {
        let shared = &self.inner.shared;
        let queued = shared.config.queued_per_consumer;
        if let Pick::Chosen(index, connection) = shared.lock().pick(queued) {
            return Ok((Place { shared, index }, connection, false));
        }
        let _waiting = Waiting::new(&shared.waiting);
        let mut down_since = None;
        loop {
            let changed = shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wake_at = {
                let mut state = shared.lock();
                match state.pick(queued) {
                    Pick::Chosen(index, connection) => {
                        let place = Place { shared, index };
                        return Ok((place, connection, true));
                    }
                    Pick::Full => {
                        down_since = None;
                        deadline
                    }
                    Pick::Down => {
                        let now = Instant::now();
                        let give_up =
                            *down_since.get_or_insert(now) + shared.config.no_consumer_wait;
                        if now >= give_up && now < deadline {
                            return Err(RpcError::NoConsumer(state.describe(&shared.addrs)));
                        }
                        give_up.min(deadline)
                    }
                }
            };
            if timeout_at(wake_at, changed).await.is_err() && Instant::now() >= deadline {
                return Err(RpcError::DeadlineExceeded);
            }
        }
    }
}

/// `9000` means `127.0.0.1:9000`.
fn normalize(addr: &str) -> String {
    let addr = addr.trim();
    match addr.parse::<u16>() {
        Ok(port) => format!("127.0.0.1:{port}"),
        Err(_) => addr.to_string(),
    }
}

#[async_trait]
impl Transport for Pool {
    async fn call(&self, call: Call) -> Result<Vec<u8>, RpcError> {
        self.send(call).await.0
    }

    /// The answer names the consumer (its address as given) that sent it.
    async fn call_traced(&self, call: Call) -> Answer {
        let (result, consumer) = self.send(call).await;
        let consumer = consumer.map(|index| self.inner.shared.addrs[index].clone());
        Answer { result, consumer }
    }
}

impl Pool {
    /// Sends `call`, again on another consumer if its connection breaks; the result, and the
    /// index of the consumer it was last sent to.
    async fn send(&self, call: Call) -> (Result<Vec<u8>, RpcError>, Option<usize>) {
        self.start();
        let deadline = deadline_after(call.timeout);
        let mut retries = 0;
        let mut consumer = None;
        let result = loop {
            let (place, connection, waited) = match self.acquire(deadline).await {
                Ok(acquired) => acquired,
                Err(err) => break Err(err),
            };
            let addr = &self.inner.shared.addrs[place.index];
            consumer = Some(place.index);
            // Sent at once, the call still has its whole timeout (less microseconds): no need
            // to read the clock again.
            let remaining = match waited || retries > 0 {
                true => deadline.saturating_duration_since(Instant::now()),
                false => call.timeout,
            };
            if remaining.is_zero() {
                break Err(RpcError::DeadlineExceeded);
            }
            let id = connection.next_id();
            let span =
                tracing::debug_span!("request", id, procedure = %call.procedure, consumer = %addr);
            match connection
                .call(id, &call, remaining, deadline)
                .instrument(span)
                .await
            {
                Outcome::Done(result) => {
                    place.answered();
                    break result;
                }
                Outcome::Lost(reason) if retries < self.inner.shared.config.max_retries => {
                    retries += 1;
                    place.retried();
                    tracing::warn!(consumer = %addr, %reason, retries, "call lost with its connection: sending it again");
                }
                Outcome::Lost(reason) => {
                    break Err(RpcError::Io(format!(
                        "connection to {addr} lost before the reply, after {retries} retries: {reason}"
                    )));
                }
            }
        };
        (result, consumer)
    }
}

enum Pick {
    Chosen(usize, Arc<Connection>),
    /// Some consumer is up, every one is full.
    Full,
    /// No consumer is up.
    Down,
}

impl State {
    /// The consumer with the lowest load (outstanding calls for its capacity) that has room,
    /// its place taken.
    fn pick(&mut self, queued: usize) -> Pick {
        let count = self.consumers.len();
        let mut best: Option<usize> = None;
        let mut any_up = false;
        for k in 0..count {
            let index = (self.next + k) % count;
            let c = &self.consumers[index];
            match &c.connection {
                Some(connection) if !connection.is_closed() => any_up = true,
                _ => continue,
            }
            if c.outstanding >= c.capacity + queued {
                continue;
            }
            let lighter = best.is_none_or(|b| {
                let b = &self.consumers[b];
                c.outstanding * b.capacity < b.outstanding * c.capacity
            });
            if lighter {
                best = Some(index);
            }
        }
        let chosen = best.and_then(|index| {
            let consumer = &mut self.consumers[index];
            let connection = consumer.connection.clone()?;
            consumer.outstanding += 1;
            Some((index, connection))
        });
        match chosen {
            Some((index, connection)) => {
                self.next = (index + 1) % count;
                Pick::Chosen(index, connection)
            }
            None if any_up => Pick::Full,
            None => Pick::Down,
        }
    }

    fn describe(&self, addrs: &[String]) -> String {
        let reasons: Vec<String> = addrs
            .iter()
            .zip(&self.consumers)
            .map(|(addr, c)| match &c.last_error {
                Some(err) => format!("{addr}: {err}"),
                None => format!("{addr}: not connected"),
            })
            .collect();
        format!("every consumer is down ({})", reasons.join("; "))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts consumer `index` in rotation on `connection`.
    pub(crate) fn up(&self, index: usize, connection: Arc<Connection>) {
        {
            let mut state = self.lock();
            let consumer = &mut state.consumers[index];
            consumer.capacity = connection.workers();
            consumer.connection = Some(connection);
            consumer.last_error = None;
        }
        self.changed.notify_waiters();
    }

    /// Takes consumer `index` out of rotation because of `error`.
    pub(crate) fn down(&self, index: usize, error: String) {
        {
            let mut state = self.lock();
            let consumer = &mut state.consumers[index];
            consumer.connection = None;
            consumer.last_error = Some(error);
        }
        self.changed.notify_waiters();
    }
}

/// Counts a call among those waiting for a place while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A call's place on one consumer, given back when the call ends however it ends.
struct Place<'a> {
    shared: &'a Shared,
    index: usize,
}

impl Place<'_> {
    fn answered(self) {
        self.shared.lock().consumers[self.index].completed += 1;
    }

    fn retried(self) {
        self.shared.lock().consumers[self.index].retried += 1;
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            let consumer = &mut state.consumers[self.index];
            consumer.outstanding = consumer.outstanding.saturating_sub(1);
        }
        if self.shared.waiting.load(Ordering::SeqCst) > 0 {
            self.shared.changed.notify_waiters();
        }
    }
}
