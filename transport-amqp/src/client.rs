//! [`AmqpTransport`]: the client half. Publishes each call to the procedure's queue and waits
//! for the reply on its own reply queue.
//!
//! One connection and one channel in confirm mode carry every call; a reader task takes the
//! replies off the reply queue and hands each to its caller by correlation id. When the broker
//! (or the node of a cluster it is connected to) goes away, the reader reconnects with backoff
//! to the first node of [`AmqpConfig::url`] that answers and declares the reply queue again,
//! under the same name. The calls in flight are not failed: each one waits for the new
//! connection, then
//! - a request the broker had confirmed, in the quorum topology, is still in its durable queue
//!   and names the same reply queue: the call listens for its reply for
//!   [`AmqpConfig::republish_after`], then publishes the request again (its reply may have
//!   been sent while the reply queue did not exist);
//! - any other request (not confirmed, classic topology, direct reply-to) is published again
//!   at once.
//!
//! So a call survives a broker's loss at least once: it may run twice, and the first reply
//! wins. Only the caller's deadline ([`rpc_core::Client`]) bounds a call; this transport sets
//! no timer of its own for it.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Channel, Confirmation, Connection, Consumer};
use rpc_core::{Call, CallResult, RpcError, Transport};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;

use crate::error::{Error, MAX_NAME};
use crate::message::{decode_reply, delivery_mode, expiration, request_properties};
use crate::reconnect::{connect, retry};
use crate::topology::{consume_direct_reply_to, declare_reply_queue, DIRECT_REPLY_TO};
use crate::{AmqpConfig, ReplyMode, Topology};

/// The client half of the AMQP transport: a [`Transport`] whose calls go through the broker.
///
/// Cheap to clone: clones share one connection. The connection closes when the last clone is
/// dropped. A call in flight when the connection breaks is not failed: it is answered after
/// the reconnection, within its deadline, at least once (see the module's doc).
///
/// ```no_run
/// use transport_amqp::{AmqpConfig, AmqpTransport};
///
/// # async fn run() -> Result<(), rpc_core::RpcError> {
/// let transport = AmqpTransport::connect(AmqpConfig::default()).await?;
/// let client = rpc_core::Client::new(transport);
/// let n: u64 = client.call("fibonacci_generator.calculate", &(10u32,)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AmqpTransport {
    shared: Arc<Shared>,
    _stop: Arc<DropGuard>,
}

impl fmt::Debug for AmqpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpTransport")
            .field("url", &self.shared.config.url)
            .field("reply_mode", &self.shared.config.reply_mode)
            .finish_non_exhaustive()
    }
}

struct Shared {
    config: AmqpConfig,
    state: Mutex<State>,
    /// Bumped at each new connection, so that callers waiting for one wake up.
    connected: watch::Sender<u64>,
    prefix: String,
    /// The reply queue's name, the same on every connection ([`ReplyMode::Queue`]).
    reply_name: String,
    counter: AtomicU64,
    /// Requests the broker refused (nacked) since the last one it accepted.
    refused: AtomicU64,
}

#[derive(Default)]
struct State {
    session: Option<Arc<Session>>,
    pending: HashMap<String, oneshot::Sender<CallResult>>,
    /// When the client last connected again after losing its connection.
    reconnected_at: Option<Instant>,
}

struct Session {
    connection: Connection,
    channel: Channel,
    reply_to: String,
    /// Fires when this connection is lost: calls on it publish again on the next one.
    lost: CancellationToken,
}

impl AmqpTransport {
    /// Connects to the broker (the first node of the list that answers), declares the reply
    /// queue (or subscribes to direct reply-to) and starts the reader task on the current
    /// runtime.
    ///
    /// # Errors
    /// [`RpcError::Io`] when no broker can be reached or it refuses the declarations.
    pub async fn connect(config: AmqpConfig) -> Result<Self, RpcError> {
        let prefix = correlation_prefix();
        let reply_name = format!("rpc.reply.{prefix}");
        let (session, replies) = open_first(&config, &reply_name).await?;
        tracing::info!(url = %config.url, reply_to = %session.reply_to, "AMQP client connected");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                session: Some(Arc::new(session)),
                ..State::default()
            }),
            connected: watch::Sender::new(0),
            prefix,
            reply_name,
            counter: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            config,
        });
        let stop = CancellationToken::new();
        tokio::spawn(run_reader(shared.clone(), replies, stop.clone()));
        Ok(Self {
            shared,
            _stop: Arc::new(stop.drop_guard()),
        })
    }

    /// The name replies come back to: the reply queue (the same across reconnections), or
    /// `amq.rabbitmq.reply-to`. `None` while reconnecting.
    pub fn reply_queue(&self) -> Option<String> {
        let state = self.shared.lock();
        state.session.as_ref().map(|s| s.reply_to.clone())
    }

    /// The current connection, once there is one: calls made while reconnecting wait here
    /// (the caller's deadline, enforced by [`rpc_core::Client`], bounds the wait).
    async fn session(&self) -> Arc<Session> {
        let mut connected = self.shared.connected.subscribe();
        loop {
            if let Some(session) = self.shared.lock().session.clone() {
                if !session.lost.is_cancelled() {
                    return session;
                }
            }
            if connected.changed().await.is_err() {
                // The reader ended (the transport is being dropped): wait to be dropped too.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Whether a request returned unroutable now may be a queue not declared again yet after
    /// a reconnection, rather than a procedure nobody serves.
    fn in_reconnect_grace(&self) -> bool {
        self.shared
            .lock()
            .reconnected_at
            .is_some_and(|at| at.elapsed() < self.shared.config.reconnect_grace)
    }

    /// Whether a request the broker confirmed before the connection was lost is still in its
    /// queue, with `reply_to` naming a reply queue that is declared again on the next
    /// connection: then its reply will come without publishing it again.
    fn reply_survives(&self) -> bool {
        self.shared.config.topology == Topology::Quorum
            && self.shared.config.reply_mode == ReplyMode::Queue
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.prefix)
    }

    /// Ends the session: calls on it publish again (or listen again) on the next one.
    fn lose_session(&self) -> Option<Arc<Session>> {
        let session = self.lock().session.take();
        if let Some(session) = &session {
            session.lost.cancel();
        }
        session
    }

    /// Ends the session for good: calls in flight get `error`.
    fn close(&self, error: &RpcError) -> Option<Arc<Session>> {
        let session = self.lose_session();
        for (_, waiter) in self.lock().pending.drain() {
            let _ = waiter.send(Err(error.clone()));
        }
        session
    }
}

/// Removes a call's pending entry when the call ends, however it ends (a dropped future too).
struct Pending<'a> {
    shared: &'a Shared,
    id: &'a str,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.shared.lock().pending.remove(self.id);
    }
}

/// How one publication of a call ended.
enum Attempt {
    /// The reply (or the broker's verdict) came.
    Done(CallResult),
    /// The connection was lost; `confirmed` when the broker had confirmed the request.
    Lost { confirmed: bool },
    /// The broker returned the request: its queue does not exist.
    Unroutable(Error),
    /// The broker nacked the request (e.g. a quorum queue without a leader for a moment):
    /// nothing was queued, publish again.
    Refused,
}

/// How many refusals (nacks) in a row make the client reconnect.
const REFUSALS_BEFORE_RECONNECT: u64 = 20;

/// How long to wait between publications of a request returned unroutable during the grace
/// after a reconnection.
const UNROUTABLE_RETRY: Duration = Duration::from_millis(100);

#[async_trait]
impl Transport for AmqpTransport {
    async fn call(&self, call: Call) -> Result<Vec<u8>, RpcError> {
        if call.procedure.len() > MAX_NAME {
            // A routing key is a short string: the broker would close the connection.
            let start = call.procedure.chars().take(40).collect();
            return Err(Error::NameTooLong(start).into());
        }
        let id = self.shared.next_id();
        let (sender, mut reply) = oneshot::channel();
        self.shared.lock().pending.insert(id.clone(), sender);
        let _pending = Pending {
            shared: &self.shared,
            id: &id,
        };
        let span = tracing::debug_span!("call", correlation_id = %id, procedure = %call.procedure);
        async {
            // The session whose connection was lost after confirming the request: on the next
            // one, listen for the reply a while before publishing again.
            let mut listen_again = false;
            loop {
                let session = self.session().await;
                if std::mem::take(&mut listen_again) {
                    tracing::debug!("listening again for the reply of a confirmed request");
                    let wait = self.shared.config.republish_after;
                    tokio::select! {
                        result = &mut reply => return result.unwrap_or(Err(RpcError::Shutdown)),
                        () = session.lost.cancelled() => {
                            listen_again = true;
                            continue;
                        }
                        () = tokio::time::sleep(wait) => {}
                    }
                    tracing::debug!("no reply after reconnecting: publishing the request again");
                }
                let remaining = call.deadline.remaining();
                let attempt =
                    publish_and_wait(&session, &id, (&call, remaining), &self.shared, &mut reply);
                match attempt.await {
                    Attempt::Done(result) => return result,
                    Attempt::Lost { confirmed } => {
                        listen_again = confirmed && self.reply_survives();
                        tracing::debug!(confirmed, "connection lost during the call");
                    }
                    Attempt::Refused => {
                        // A channel that keeps being refused may hold a stale view of the
                        // queue (its leader on a node that went away): a new connection and
                        // channel see the new leader.
                        let refused = self.shared.refused.fetch_add(1, Ordering::Relaxed) + 1;
                        if refused % REFUSALS_BEFORE_RECONNECT == 0 {
                            tracing::warn!(
                                refused,
                                "the broker keeps refusing requests; reconnecting"
                            );
                            session.lost.cancel();
                        }
                        tokio::time::sleep(UNROUTABLE_RETRY).await;
                    }
                    Attempt::Unroutable(error) => {
                        if !self.in_reconnect_grace() {
                            return Err(error.into());
                        }
                        tokio::time::sleep(UNROUTABLE_RETRY).await;
                    }
                }
            }
        }
        .instrument(span)
        .await
    }
}

async fn publish_and_wait(
    session: &Session,
    id: &str,
    (call, remaining): (&Call, Duration),
    shared: &Shared,
    reply: &mut oneshot::Receiver<CallResult>,
) -> Attempt {
    let config = &shared.config;
    let properties = request_properties(call, id, &session.reply_to)
        .with_expiration(expiration(remaining))
        .with_delivery_mode(delivery_mode(config.topology));
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let published = session
        .channel
        .basic_publish(
            "".into(),
            call.procedure.as_str().into(),
            options,
            &call.args,
            properties,
        )
        .await;
    let confirm = match published {
        Ok(confirm) => confirm,
        Err(e) => {
            // The channel or its connection is dead: have the reader reconnect.
            tracing::debug!(error = %e, "cannot publish the request");
            session.lost.cancel();
            return Attempt::Lost { confirmed: false };
        }
    };
    // The reply usually comes after the broker's confirm, but need not: wait for both at once,
    // so that an unroutable call fails as soon as the broker returns it and a routed one costs
    // no extra round trip.
    tokio::pin!(confirm);
    let mut confirmed = false;
    loop {
        tokio::select! {
            result = &mut *reply => {
                return Attempt::Done(result.unwrap_or(Err(RpcError::Shutdown)));
            }
            () = session.lost.cancelled() => return Attempt::Lost { confirmed },
            confirmation = &mut confirm, if !confirmed => {
                confirmed = true;
                match confirmation {
                    Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => {
                        shared.refused.store(0, Ordering::Relaxed);
                    }
                    Ok(Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned))) => {
                        return Attempt::Unroutable(Error::Unroutable {
                            procedure: call.procedure.clone(),
                            code: returned.reply_code,
                            text: returned.reply_text.as_str().to_string(),
                        });
                    }
                    Ok(Confirmation::Nack(None)) => return Attempt::Refused,
                    Err(e) => {
                        tracing::debug!(error = %e, "the request was not confirmed");
                        session.lost.cancel();
                        return Attempt::Lost { confirmed: false };
                    }
                }
            }
        }
    }
}

/// Opens a connection, a confirm-mode channel and the reply consumer; the reply queue is
/// `reply_name` in [`ReplyMode::Queue`].
/// [`open`] for a client's first session. The reply queue's binding to the auto-delete
/// `rpc.dlx` can fail when another client's last binding goes between our declaring the
/// exchange and binding to it (the broker deletes the exchange then): set up again, a few
/// times, before giving up.
async fn open_first(config: &AmqpConfig, reply_name: &str) -> Result<(Session, Consumer), Error> {
    const SETUP_TRIES: u64 = 3;
    let refused = AtomicU64::new(0);
    loop {
        let before = refused.load(Ordering::Relaxed);
        match open(config, reply_name, &refused).await {
            // Reached a broker, but the setup failed: try it again.
            Err(err) if refused.load(Ordering::Relaxed) > before && before + 1 < SETUP_TRIES => {
                tracing::debug!(%err, "setting the session up again");
            }
            opened => return opened,
        }
    }
}

/// Connects and sets up a session with the reply queue `reply_name`; counts in `refused` the
/// attempts that reached a broker but could not declare the reply queue (it may still be
/// locked by the connection that was lost).
async fn open(
    config: &AmqpConfig,
    reply_name: &str,
    refused: &AtomicU64,
) -> Result<(Session, Consumer), Error> {
    let connection = connect(config).await?;
    let setup = async {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let (reply_to, replies) = match config.reply_mode {
            ReplyMode::Queue => declare_reply_queue(&channel, reply_name).await?,
            ReplyMode::DirectReplyTo => (
                DIRECT_REPLY_TO.to_string(),
                consume_direct_reply_to(&channel).await?,
            ),
        };
        Ok::<_, lapin::Error>((channel, reply_to, replies))
    };
    match setup.await {
        Ok((channel, reply_to, replies)) => Ok((
            Session {
                connection,
                channel,
                reply_to,
                lost: CancellationToken::new(),
            },
            replies,
        )),
        Err(e) => {
            refused.fetch_add(1, Ordering::Relaxed);
            crate::reconnect::close(&connection, "setup failed").await;
            Err(Error::broker("cannot declare the reply queue")(e))
        }
    }
}

/// Hands replies to their callers; when the connection breaks, reconnects (to the next node
/// that answers) and declares the reply queue again, while the calls in flight wait to listen
/// or publish again on the new connection. Ends when every [`AmqpTransport`] clone is gone.
async fn run_reader(shared: Arc<Shared>, mut replies: Consumer, stop: CancellationToken) {
    loop {
        let session_lost = shared
            .lock()
            .session
            .as_ref()
            .map_or_else(CancellationToken::new, |s| s.lost.clone());
        let lost = loop {
            let delivery = tokio::select! {
                _ = stop.cancelled() => break None,
                () = session_lost.cancelled() => {
                    break Some(Error::PublishFailed);
                }
                delivery = replies.next() => delivery,
            };
            match delivery {
                Some(Ok(delivery)) => deliver(&shared, delivery),
                Some(Err(e)) => break Some(Error::broker("connection to the broker lost")(e)),
                None => break Some(Error::ConsumerCancelled(shared.reply_name.clone())),
            }
        };
        let Some(error) = lost else {
            if let Some(session) = shared.close(&RpcError::Shutdown) {
                crate::reconnect::close(&session.connection, "client closed").await;
            }
            return;
        };
        tracing::warn!(%error, "AMQP client lost its connection; reconnecting, calls in flight wait");
        if let Some(session) = shared.lose_session() {
            crate::reconnect::close(&session.connection, "reconnecting").await;
        }
        let config = shared.config.clone();
        let reply_name = shared.reply_name.clone();
        let refused = AtomicU64::new(0);
        let Some((session, next)) = retry(&config, &stop, "reconnecting the AMQP client", || {
            // The same reply queue name first; if a broker refuses it three times (its old
            // queue not yet gone from a node that is going away), another: calls then publish
            // again. Attempts that reach no broker (it is restarting) do not count.
            let n = refused.load(Ordering::Relaxed);
            let name = if n < 3 {
                reply_name.clone()
            } else {
                format!("{reply_name}.{n}")
            };
            let config = config.clone();
            let refused = &refused;
            async move { open(&config, &name, refused).await }
        })
        .await
        else {
            shared.close(&RpcError::Shutdown);
            return;
        };
        tracing::info!(url = %config.url, reply_to = %session.reply_to, "AMQP client reconnected");
        {
            let mut state = shared.lock();
            state.session = Some(Arc::new(session));
            state.reconnected_at = Some(Instant::now());
        }
        shared.connected.send_modify(|generation| *generation += 1);
        replies = next;
    }
}

fn deliver(shared: &Shared, delivery: lapin::message::Delivery) {
    let Some(id) = delivery.properties.correlation_id().as_ref() else {
        tracing::warn!("reply without correlation id dropped");
        return;
    };
    let waiter = shared.lock().pending.remove(id.as_str());
    match waiter {
        Some(waiter) => {
            let _ = waiter.send(decode_reply(&delivery.properties, delivery.data));
        }
        None => tracing::debug!(correlation_id = %id.as_str(), "late or unknown reply dropped"),
    }
}

/// A prefix no other client shares, so correlation ids and reply queue names are unique across
/// clients too: the process, the time, and a count of the clients this process made (two made
/// at the same instant must not share a reply queue).
fn correlation_prefix() -> String {
    static CLIENTS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = CLIENTS.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:x}-{:x}-{n:x}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff
    )
}
