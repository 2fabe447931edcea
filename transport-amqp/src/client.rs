//! [`AmqpTransport`]: the client half. Publishes each call to the procedure's queue and waits
//! for the reply on its own reply queue.
//!
//! One connection and one channel in confirm mode carry every call; a reader task takes the
//! replies off the reply queue and hands each to its caller by correlation id. When the broker
//! goes away the reader fails the calls in flight with [`RpcError::Io`] (they may or may not
//! have run), reconnects with backoff and declares a new reply queue; calls made meanwhile wait
//! for the new connection, within their timeout.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Channel, Confirmation, Connection, Consumer};
use rpc_core::{Call, CallResult, RpcError, Transport};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;

use crate::message::{decode_reply, request_properties};
use crate::reconnect::{connect, io_error, retry};
use crate::topology::{consume_direct_reply_to, declare_reply_queue, DIRECT_REPLY_TO};
use crate::{AmqpConfig, ReplyMode};

/// The longest routing key (a procedure name) AMQP carries: a short string.
const MAX_NAME: usize = 255;

/// The client half of the AMQP transport: a [`Transport`] whose calls go through the broker.
///
/// Cheap to clone: clones share one connection. The connection closes when the last clone is
/// dropped. Calls are at-most-once from this side: a call in flight when the connection
/// breaks fails with [`RpcError::Io`] rather than being sent twice.
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
    counter: AtomicU64,
}

#[derive(Default)]
struct State {
    session: Option<Arc<Session>>,
    pending: HashMap<String, oneshot::Sender<CallResult>>,
    last_error: Option<RpcError>,
}

struct Session {
    connection: Connection,
    channel: Channel,
    reply_to: String,
}

impl AmqpTransport {
    /// Connects to the broker, declares the reply queue (or subscribes to direct reply-to) and
    /// starts the reader task on the current runtime.
    ///
    /// # Errors
    /// [`RpcError::Io`] when the broker cannot be reached or refuses the declarations.
    pub async fn connect(config: AmqpConfig) -> Result<Self, RpcError> {
        let (session, replies) = open(&config).await?;
        tracing::info!(url = %config.url, reply_to = %session.reply_to, "AMQP client connected");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                session: Some(Arc::new(session)),
                ..State::default()
            }),
            connected: watch::Sender::new(0),
            prefix: correlation_prefix(),
            counter: AtomicU64::new(0),
            config,
        });
        let stop = CancellationToken::new();
        tokio::spawn(run_reader(shared.clone(), replies, stop.clone()));
        Ok(Self {
            shared,
            _stop: Arc::new(stop.drop_guard()),
        })
    }

    /// The name replies come back to: the current reply queue, or `amq.rabbitmq.reply-to`.
    /// `None` while reconnecting.
    pub fn reply_queue(&self) -> Option<String> {
        let state = self.shared.lock();
        state.session.as_ref().map(|s| s.reply_to.clone())
    }

    /// Waits for a connection and registers a call on it; the reply comes on the receiver.
    async fn register(
        &self,
        call: &Call,
    ) -> Result<(Arc<Session>, String, oneshot::Receiver<CallResult>), RpcError> {
        let mut connected = self.shared.connected.subscribe();
        loop {
            {
                let mut state = self.shared.lock();
                if let Some(session) = state.session.clone() {
                    let id = self.shared.next_id();
                    let (sender, receiver) = oneshot::channel();
                    state.pending.insert(id.clone(), sender);
                    return Ok((session, id, receiver));
                }
            }
            let left = call.deadline.remaining();
            if tokio::time::timeout(left, connected.changed())
                .await
                .is_err()
            {
                let state = self.shared.lock();
                let why = state
                    .last_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(": {e}"));
                return Err(RpcError::Io(format!(
                    "not connected to the broker (reconnecting){why}"
                )));
            }
        }
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

    /// Ends the session: calls in flight get `error`, new calls wait for the next session.
    fn lose_session(&self, error: RpcError) -> Option<Arc<Session>> {
        let mut state = self.lock();
        let session = state.session.take();
        for (_, waiter) in state.pending.drain() {
            let _ = waiter.send(Err(error.clone()));
        }
        state.last_error = Some(error);
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

#[async_trait]
impl Transport for AmqpTransport {
    async fn call(&self, call: Call) -> Result<Vec<u8>, RpcError> {
        if call.procedure.len() > MAX_NAME {
            // A routing key is a short string: the broker would close the connection.
            return Err(RpcError::UnknownProcedure(format!(
                "procedure names are at most {MAX_NAME} bytes on AMQP: `{}...`",
                call.procedure.chars().take(40).collect::<String>()
            )));
        }
        let (session, id, reply) = self.register(&call).await?;
        let _pending = Pending {
            shared: &self.shared,
            id: &id,
        };
        let span = tracing::debug_span!("call", correlation_id = %id, procedure = %call.procedure);
        // No timer here: the caller's `Client` drops this future at the call's deadline.
        publish_and_wait(&session, &id, &call, reply)
            .instrument(span)
            .await
    }
}

async fn publish_and_wait(
    session: &Session,
    id: &str,
    call: &Call,
    mut reply: oneshot::Receiver<CallResult>,
) -> CallResult {
    let properties = request_properties(call, id, &session.reply_to);
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let confirm = session
        .channel
        .basic_publish(
            "".into(),
            call.procedure.as_str().into(),
            options,
            &call.args,
            properties,
        )
        .await
        .map_err(|e| io_error("cannot publish the request", &e))?;
    // The reply usually comes after the broker's confirm, but need not: wait for both at once,
    // so that an unroutable call fails as soon as the broker returns it and a routed one costs
    // no extra round trip.
    tokio::pin!(confirm);
    let mut confirmed = false;
    loop {
        tokio::select! {
            result = &mut reply => return result.unwrap_or(Err(RpcError::Shutdown)),
            confirmation = &mut confirm, if !confirmed => {
                confirmed = true;
                match confirmation {
                    Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => {}
                    Ok(Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned))) => {
                        return Err(RpcError::UnknownProcedure(format!(
                            "nobody serves `{}` (the broker returned the request: {} {})",
                            call.procedure,
                            returned.reply_code,
                            returned.reply_text.as_str()
                        )));
                    }
                    Ok(Confirmation::Nack(None)) => {
                        return Err(RpcError::Io("the broker refused the request (nack)".into()));
                    }
                    Err(e) => return Err(io_error("the request was not confirmed", &e)),
                }
            }
        }
    }
}

/// Opens a connection, a confirm-mode channel and the reply consumer.
async fn open(config: &AmqpConfig) -> Result<(Session, Consumer), RpcError> {
    let connection = connect(config).await?;
    let setup = async {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let (reply_to, replies) = match config.reply_mode {
            ReplyMode::Queue => declare_reply_queue(&channel).await?,
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
            },
            replies,
        )),
        Err(e) => {
            let _ = connection.close(200, "setup failed".into()).await;
            Err(io_error("cannot declare the reply queue", &e))
        }
    }
}

/// Hands replies to their callers; when the connection breaks, fails the calls in flight and
/// reconnects. Ends when every [`AmqpTransport`] clone is gone.
async fn run_reader(shared: Arc<Shared>, mut replies: Consumer, stop: CancellationToken) {
    loop {
        let lost = loop {
            let delivery = tokio::select! {
                _ = stop.cancelled() => break None,
                delivery = replies.next() => delivery,
            };
            match delivery {
                Some(Ok(delivery)) => deliver(&shared, delivery),
                Some(Err(e)) => break Some(io_error("connection to the broker lost", &e)),
                None => {
                    break Some(RpcError::Io(
                        "the broker cancelled the reply consumer".into(),
                    ))
                }
            }
        };
        let Some(error) = lost else {
            if let Some(session) = shared.lose_session(RpcError::Shutdown) {
                let _ = session.connection.close(200, "client closed".into()).await;
            }
            return;
        };
        tracing::warn!(%error, "AMQP client lost its connection; calls in flight fail, reconnecting");
        if let Some(session) = shared.lose_session(error) {
            let _ = session.connection.close(200, "reconnecting".into()).await;
        }
        let config = shared.config.clone();
        let Some((session, next)) = retry(&config, &stop, "reconnecting the AMQP client", || {
            open(&config)
        })
        .await
        else {
            return;
        };
        tracing::info!(url = %config.url, reply_to = %session.reply_to, "AMQP client reconnected");
        shared.lock().session = Some(Arc::new(session));
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

/// A prefix no other client shares, so correlation ids are unique across clients too.
fn correlation_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}-{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}
