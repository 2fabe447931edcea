//! The producer, the calling half: [`TcpTransport`], one [`Transport`] over many consumers,
//! balanced by least outstanding calls (`balance.rs`), each consumer kept connected by a
//! supervisor (`supervisor.rs`), with calls retried when their connection breaks.

use std::sync::{Arc, Once};

use async_trait::async_trait;
use rpc_core::{Answer, Call, RpcError, Transport};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;

use crate::config::TcpTransportConfig;
use balance::Shared;
use connection::Outcome;
pub use status::ConsumerStatus;

mod balance;
mod connection;
mod status;
mod supervisor;
mod window;
mod writer;

/// A [`Transport`] that is a pool over several consumers, each reached on one multiplexed
/// connection.
///
/// - **Capacity**: each consumer says how many calls it runs at once (its `workers`) and which
///   of its procedures take batches (`#[batch(max = N)]`) when the pool connects. A call goes
///   to the consumer with the fewest outstanding calls for its capacity; each consumer holds
///   at most `capacity + window` calls when one of a procedure is sent (for a call to a
///   batch procedure, `2 x capacity x max + window`: a batch running on each worker and the
///   next one waiting, so that batches fill), and calls beyond that wait here, so that a slow
///   task on one consumer never holds up work that another could do. They wait in line: a
///   freed place goes to the call that has waited longest, never to one made after it.
/// - **Pipeline**: the window is per procedure and learned: `queued_per_consumer` to start
///   with, one more for each call answered within `pipeline_budget`, up to
///   `max_queued_per_consumer`, halved by each slower one. Cheap calls thus get dozens on
///   the wire (a consumer never waits a round trip between them) while heavy ones keep the
///   floor and spread over the consumers.
/// - **Faults**: a consumer that refuses connections, breaks one, or stops answering pings
///   (`heartbeat_interval`) is out of rotation and probed back with jittered exponential
///   backoff (`backoff_min` to `backoff_max`); it rejoins as soon as a probe succeeds. With no
///   consumer up, a call waits at most `no_consumer_wait`, then fails with
///   [`RpcError::NoConsumer`].
/// - **At-least-once**: a call whose connection broke before its reply is sent again, to
///   another consumer when one is up, at most `max_retries` times. The consumer that lost
///   the connection may have run it already: procedures called through a pool should be
///   safe to run twice.
/// - **Deadlines and cancellation**: the pool sets no timer of its own; the call's
///   [`rpc_core::Deadline`] is enforced by the caller's [`rpc_core::Client`], which drops the
///   call when it passes. The consumer is sent what is left of it. A dropped call frees its
///   place at once; if it was already sent, the consumer is sent a `Cancel` for it (a call
///   not yet started there never runs, a running one may stop early), and a late reply is
///   discarded.
///
/// Cloning is cheap and shares the connections; the last clone dropped closes them.
#[derive(Clone)]
pub struct TcpTransport {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    started: Once,
    _stop: DropGuard,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("consumers", &self.consumers())
            .finish_non_exhaustive()
    }
}

impl TcpTransport {
    /// A pool over `addrs`: `host:port`, or a bare port meaning `127.0.0.1:port`.
    ///
    /// Connecting happens in the background, started here when called inside a tokio runtime,
    /// otherwise at the first call; calls wait for the first consumer to come up.
    ///
    /// # Errors
    /// [`RpcError::NoConsumer`] when `addrs` is empty.
    pub fn new<I, A>(addrs: I, config: TcpTransportConfig) -> Result<Self, RpcError>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<str>,
    {
        let addrs: Vec<String> = addrs.into_iter().map(|a| normalize(a.as_ref())).collect();
        if addrs.is_empty() {
            return Err(RpcError::NoConsumer("no consumer address given".into()));
        }
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared::new(addrs, config, stop.clone()));
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
        self.inner.shared.statuses()
    }

    fn start(&self) {
        self.inner.started.call_once(|| {
            for index in 0..self.inner.shared.addrs.len() {
                tokio::spawn(supervisor::supervise(self.inner.shared.clone(), index));
            }
        });
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
impl Transport for TcpTransport {
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

impl TcpTransport {
    /// Sends `call`, again on another consumer if its connection breaks; the result, and the
    /// index of the consumer it was last sent to.
    async fn send(&self, call: Call) -> (Result<Vec<u8>, RpcError>, Option<usize>) {
        self.start();
        let mut retries = 0;
        let mut consumer = None;
        let result = loop {
            let (place, connection) = match self.inner.shared.acquire(&call.procedure).await {
                Ok(acquired) => acquired,
                Err(err) => break Err(err),
            };
            let addr = &self.inner.shared.addrs[place.index];
            consumer = Some(place.index);
            if call.deadline.passed_at(place.taken()) {
                break Err(RpcError::DeadlineExceeded);
            }
            let id = connection.next_id();
            let span =
                tracing::debug_span!("request", id, procedure = %call.procedure, consumer = %addr);
            match connection.call(id, &call).instrument(span).await {
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
