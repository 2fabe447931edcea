//! Balancing: which consumer takes a call. Each has room for its capacity plus the call's
//! procedure's pipeline window (`window.rs`: a few calls, more for a procedure whose calls
//! come back fast; for a call to one of its batch procedures, room for two batches per
//! worker too: one running, the next one waiting); a call takes the least loaded one with
//! room, or waits for a place in a first come, first served line: a freed place goes to the
//! call that has waited longest, never to one that just arrived, so no call waits behind calls
//! made after it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rpc_core::RpcError;
use tokio::sync::Notify;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use super::connection::Connection;
use super::status::ConsumerStatus;
use super::window::Windows;
use crate::config::TcpTransportConfig;

/// What the pool and its supervisors share.
pub(crate) struct Shared {
    pub(crate) addrs: Vec<String>,
    pub(crate) config: TcpTransportConfig,
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
    /// The tickets of the calls waiting for a place, oldest first.
    line: VecDeque<u64>,
    /// The next ticket given out.
    tickets: u64,
    /// Each procedure's pipeline window.
    windows: Windows,
}

#[derive(Default)]
struct Consumer {
    connection: Option<Arc<Connection>>,
    capacity: usize,
    /// Its batch procedures and their largest batch, as it said in the handshake.
    batches: HashMap<String, usize>,
    outstanding: usize,
    completed: u64,
    retried: u64,
    connects: u64,
    last_error: Option<String>,
}

impl Shared {
    /// Shared state for consumers at `addrs`, none of them up yet.
    pub(crate) fn new(
        addrs: Vec<String>,
        config: TcpTransportConfig,
        stop: CancellationToken,
    ) -> Self {
        let consumers = addrs.iter().map(|_| Consumer::default()).collect();
        let windows = Windows::new(&config);
        Self {
            addrs,
            config,
            stop,
            state: Mutex::new(State {
                consumers,
                next: 0,
                line: VecDeque::new(),
                tickets: 0,
                windows,
            }),
            changed: Notify::new(),
            waiting: AtomicUsize::new(0),
        }
    }

    /// The consumers, in the order given, as the pool sees them now.
    pub(crate) fn statuses(&self) -> Vec<ConsumerStatus> {
        let state = self.lock();
        self.addrs
            .iter()
            .zip(&state.consumers)
            .map(|(addr, c)| ConsumerStatus {
                addr: addr.clone(),
                up: c.connection.is_some(),
                capacity: c.capacity,
                outstanding: c.outstanding,
                completed: c.completed,
                retried: c.retried,
                connects: c.connects,
                last_error: c.last_error.clone(),
            })
            .collect()
    }

    /// A place on the least loaded consumer that is up, waiting in line for one when all are
    /// full or down, or when other calls already wait.
    ///
    /// No deadline here: the caller's [`rpc_core::Client`] drops this future when the call's
    /// deadline passes, which takes it out of the line.
    ///
    /// # Errors
    /// [`RpcError::NoConsumer`] when no consumer has been up for `no_consumer_wait`.
    pub(crate) async fn acquire<'a>(
        &'a self,
        procedure: &'a str,
    ) -> Result<(Place<'a>, Arc<Connection>), RpcError> {
        let ticket = {
            let mut state = self.lock();
            if state.line.is_empty() {
                if let Pick::Chosen(index, connection) = state.pick(procedure) {
                    return Ok((Place::new(self, index, procedure), connection));
                }
            }
            Ticket::new(self, &mut state)
        };
        let mut down_since = None;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let give_up = {
                let mut state = self.lock();
                let pick = match state.line.front() == Some(&ticket.id) {
                    true => state.pick(procedure),
                    false => state.waiting_pick(),
                };
                match pick {
                    Pick::Chosen(index, connection) => {
                        state.line.pop_front();
                        drop(state);
                        ticket.served();
                        return Ok((Place::new(self, index, procedure), connection));
                    }
                    Pick::Full => {
                        down_since = None;
                        None
                    }
                    Pick::Down => {
                        let now = Instant::now();
                        let give_up = *down_since.get_or_insert(now) + self.config.no_consumer_wait;
                        if now >= give_up {
                            return Err(RpcError::NoConsumer(state.describe(&self.addrs)));
                        }
                        Some(give_up)
                    }
                }
            };
            match give_up {
                Some(at) => {
                    let _ = timeout_at(at, changed).await;
                }
                None => changed.await,
            }
        }
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
    /// The consumer with the lowest load (outstanding calls for its capacity) that has room
    /// for a call to `procedure`, its place taken.
    fn pick(&mut self, procedure: &str) -> Pick {
        let queued = self.windows.extra(procedure);
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
            if c.outstanding >= c.room(procedure, queued) {
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

    /// For a call in line behind others: `Full` while some consumer is up (the calls ahead
    /// take the places first), `Down` when none is.
    fn waiting_pick(&self) -> Pick {
        let up = self.consumers.iter().any(|c| {
            c.connection
                .as_ref()
                .is_some_and(|connection| !connection.is_closed())
        });
        if up {
            Pick::Full
        } else {
            Pick::Down
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

impl Consumer {
    /// The most calls it may hold when one more to `procedure` is to be sent: its capacity
    /// plus `queued` (the procedure's window); for a batch procedure, two batches per worker plus `queued`, so that a
    /// whole batch is already waiting when a worker finishes the one it runs (with only
    /// `queued` waiting, the batches after the first would hold `queued` calls). Heavy calls
    /// of other procedures still find at most `capacity + their own window` (the floor, for
    /// a heavy procedure) calls ahead of them.
    fn room(&self, procedure: &str, queued: usize) -> usize {
        match self.batches.get(procedure) {
            Some(&max) if max > 1 => 2 * self.capacity * max + queued,
            _ => self.capacity + queued,
        }
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
            consumer.batches = connection.batch_sizes();
            consumer.connection = Some(connection);
            consumer.connects += 1;
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

/// A call's place in the line of calls waiting for a consumer. Leaving the line unserved
/// (its call timed out or was dropped) lets the next in line move up.
struct Ticket<'a> {
    shared: &'a Shared,
    id: u64,
    served: bool,
}

impl<'a> Ticket<'a> {
    /// Joins the end of the line.
    fn new(shared: &'a Shared, state: &mut State) -> Self {
        let id = state.tickets;
        state.tickets += 1;
        state.line.push_back(id);
        shared.waiting.fetch_add(1, Ordering::SeqCst);
        Self {
            shared,
            id,
            served: false,
        }
    }

    /// Out of the line with a place (the caller popped it): the next in line may take one too.
    fn served(mut self) {
        self.served = true;
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.served {
            let id = self.id;
            self.shared.lock().line.retain(|&t| t != id);
        }
        self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
        // The next in line may find a place: a served ticket took one of perhaps several free,
        // and a ticket that gave up was perhaps at the front.
        if self.shared.waiting.load(Ordering::SeqCst) > 0 {
            self.shared.changed.notify_waiters();
        }
    }
}

/// A call's place on one consumer, given back when the call ends however it ends.
pub(crate) struct Place<'a> {
    shared: &'a Shared,
    /// The consumer's index, in the order the pool was given them.
    pub(crate) index: usize,
    /// The call's procedure, whose window its time teaches.
    procedure: &'a str,
    /// When the place was taken.
    taken: Instant,
    outcome: Option<Counter>,
}

enum Counter {
    Completed,
    Retried,
}

impl<'a> Place<'a> {
    fn new(shared: &'a Shared, index: usize, procedure: &'a str) -> Self {
        Self {
            shared,
            index,
            procedure,
            taken: Instant::now(),
            outcome: None,
        }
    }

    /// When the place was taken: the clock read that also serves the call's deadline check.
    pub(crate) fn taken(&self) -> Instant {
        self.taken
    }

    /// Gives the place back, counting an answer and teaching the procedure's window how long
    /// it took.
    pub(crate) fn answered(mut self) {
        self.outcome = Some(Counter::Completed);
    }

    /// Gives the place back, counting a call lost with its connection.
    pub(crate) fn retried(mut self) {
        self.outcome = Some(Counter::Retried);
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let held = self.taken.elapsed();
        {
            let mut state = self.shared.lock();
            let consumer = &mut state.consumers[self.index];
            consumer.outstanding = consumer.outstanding.saturating_sub(1);
            match self.outcome {
                Some(Counter::Completed) => {
                    consumer.completed += 1;
                    state.windows.answered(self.procedure, held);
                }
                Some(Counter::Retried) => consumer.retried += 1,
                None => state.windows.abandoned(self.procedure, held),
            }
        }
        if self.shared.waiting.load(Ordering::SeqCst) > 0 {
            self.shared.changed.notify_waiters();
        }
    }
}
