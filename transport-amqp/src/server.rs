//! The server half: consumes the request queue of every procedure in a [`Registry`], runs each
//! request and publishes its reply.
//!
//! - Prefetch = the registry's workers, per consumer (`basic.qos` with `global` false), i.e.
//!   per procedure queue: a consumer holds no more requests of a procedure than it can run,
//!   and the rest stay in the queue for other consumers, or expire there and go back to their
//!   callers. Never channel-wide: quorum queues do not support it and RabbitMQ 4.3 denies it
//!   by default.
//! - A request is acked only after its reply is published: a consumer that dies mid-task
//!   leaves it unacked, and the broker redelivers it to another consumer.
//! - A malformed request (no `reply_to`, a content type we do not speak, a body that does not
//!   decode) gets an error reply when it has a `reply_to` and is acked: never requeued. A body
//!   over [`AmqpConfig::max_body`] is not even decoded: a protocol error, as an oversized
//!   frame on TCP.
//! - A request's deadline is its `expiration`: one that arrives with none left (`"0"`) is
//!   answered `deadline exceeded` and its procedure does not run.
//! - When the broker (or its node of a cluster) goes away the consumer reconnects with backoff
//!   to the first node of [`AmqpConfig::url`] that answers and declares its queues again;
//!   requests it was running are redelivered by the broker (at-least-once). In the quorum
//!   topology each redelivery counts against the queue's delivery limit
//!   ([`AmqpConfig::delivery_limit`]): a request whose procedure kills every consumer it
//!   reaches is dead-lettered back to its caller after that many, never run forever.
//! - A delivery left unacked longer than the broker's `consumer_timeout` (30 minutes by
//!   default) gets its channel closed by the broker: the consumer sees that as a lost
//!   connection, reconnects, and the request is redelivered (and in the quorum topology counts
//!   against the delivery limit). Procedures that may run longer need the broker's
//!   `consumer_timeout` raised (see the README).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use futures::stream::{select_all, Stream, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use rpc_core::{Encoding, Registry, RpcError, ServerTask};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::Error;
use crate::message::{parse_request, request_encoding, ReplyBody};
use crate::reconnect::{connect, retry};
use crate::topology::{declare_dlx, declare_request_queue};
use crate::AmqpConfig;

/// Every request queue's deliveries, each tagged with its procedure; `None` marks the end of
/// one queue's consumer (the broker cancelled it, e.g. the queue was deleted).
type Deliveries = Pin<Box<dyn Stream<Item = (Arc<str>, Option<lapin::Result<Delivery>>)> + Send>>;

/// One connection's worth of consuming: the channel and the merged request streams.
struct Session {
    connection: Connection,
    channel: Channel,
    consumer_tags: Vec<String>,
    deliveries: Deliveries,
}

/// Serves `registry` on the broker until `shutdown` fires, then finishes and answers the
/// requests it holds and returns.
///
/// Reconnects by itself whenever the broker goes away after the first connection.
///
/// # Errors
/// [`RpcError::Io`] when the first connection or the declarations fail (a wrong URL, a queue
/// declared by someone with other flags): a consumer that never started says so at once.
pub async fn serve(
    config: AmqpConfig,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> Result<(), RpcError> {
    let session = open(&config, &registry).await?;
    run(config, registry, session, shutdown).await;
    Ok(())
}

/// A consumer running in the background; [`AmqpServer::shutdown`] stops it.
#[derive(Debug)]
pub struct AmqpServer {
    task: ServerTask,
}

impl AmqpServer {
    /// Connects, declares the request queues and starts consuming them on the current runtime;
    /// requests are taken as soon as this returns.
    ///
    /// # Errors
    /// As [`serve`]'s first connection.
    pub async fn start(config: AmqpConfig, registry: Arc<Registry>) -> Result<Self, RpcError> {
        let session = open(&config, &registry).await?;
        let task = ServerTask::spawn(|shutdown| run(config, registry, session, shutdown));
        Ok(Self { task })
    }

    /// Stops taking requests, finishes and answers the ones it holds, and returns.
    pub async fn shutdown(self) {
        self.task.shutdown().await;
    }
}

async fn open(config: &AmqpConfig, registry: &Registry) -> Result<Session, Error> {
    let connection = connect(config).await?;
    match declare_and_consume(&connection, config, registry).await {
        Ok((channel, consumer_tags, deliveries)) => {
            tracing::info!(
                url = %config.url,
                procedures = ?registry.procedure_names(),
                workers = registry.workers(),
                "AMQP consumer ready"
            );
            Ok(Session {
                connection,
                channel,
                consumer_tags,
                deliveries,
            })
        }
        Err(e) => {
            crate::reconnect::close(&connection, "setup failed").await;
            Err(Error::broker(
                "cannot declare or consume the request queues",
            )(e))
        }
    }
}

async fn declare_and_consume(
    connection: &Connection,
    config: &AmqpConfig,
    registry: &Registry,
) -> lapin::Result<(Channel, Vec<String>, Deliveries)> {
    let channel = connection.create_channel().await?;
    declare_dlx(&channel).await?;
    let mut streams = Vec::new();
    let mut tags = Vec::new();
    for procedure in registry.procedure_names() {
        declare_request_queue(&channel, &procedure, config).await?;
        // Per consumer (never channel-wide): applies to the basic.consume after it. One
        // request per worker, or a batch's worth per worker for a batch procedure, so that
        // a batch can form without this consumer holding work it could not start.
        let batch = registry.batch_size(&procedure);
        let prefetch = u16::try_from(registry.workers().saturating_mul(batch)).unwrap_or(u16::MAX);
        channel
            .basic_qos(prefetch, BasicQosOptions { global: false })
            .await?;
        let consumer = channel
            .basic_consume(
                procedure.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tags.push(consumer.tag().as_str().to_string());
        let procedure: Arc<str> = procedure.into();
        let end = futures::stream::once({
            let procedure = procedure.clone();
            async move { (procedure, None) }
        });
        streams.push(
            consumer
                .map(move |d| (procedure.clone(), Some(d)))
                .chain(end)
                .boxed(),
        );
    }
    if streams.is_empty() {
        // Nothing to serve: wait for shutdown rather than see an ended stream as a lost broker.
        streams.push(futures::stream::pending().boxed());
    }
    Ok((channel, tags, Box::pin(select_all(streams))))
}

async fn run(
    config: AmqpConfig,
    registry: Arc<Registry>,
    mut session: Session,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    loop {
        let lost = loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => break None,
                next = session.deliveries.next() => next,
            };
            match next {
                Some((procedure, Some(Ok(delivery)))) => {
                    let registry = registry.clone();
                    let channel = session.channel.clone();
                    let max_body = config.max_body;
                    tracker.spawn(handle(registry, channel, procedure, delivery, max_body));
                }
                Some((_, Some(Err(e)))) => {
                    break Some(Error::broker("connection to the broker lost")(e))
                }
                Some((procedure, None)) => {
                    break Some(Error::ConsumerCancelled(procedure.to_string()))
                }
                None => break Some(Error::ConsumerCancelled("every queue".into())),
            }
        };
        let Some(error) = lost else { break };
        tracing::warn!(%error, "AMQP consumer lost its connection; reconnecting");
        // Requests still running cannot be acked on the dead channel: the broker redelivers
        // them. Close explicitly in case only the channel died.
        crate::reconnect::close(&session.connection, "reconnecting").await;
        let Some(next) = retry(&config, &shutdown, "reconnecting the AMQP consumer", || {
            open(&config, &registry)
        })
        .await
        else {
            break;
        };
        session = next;
    }
    // Stop deliveries, answer what we hold, then close: unread prefetched requests go back to
    // the queue for other consumers.
    for tag in &session.consumer_tags {
        let cancel = session
            .channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default());
        // Bounded: a dead connection may never answer.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), cancel).await;
    }
    tracker.close();
    tracker.wait().await;
    crate::reconnect::close(&session.connection, "consumer stopped").await;
    tracing::info!("AMQP consumer stopped");
}

/// Runs one request, publishes its reply, then acks it. A body over `max_body` bytes is
/// answered with a protocol error, not decoded.
async fn handle(
    registry: Arc<Registry>,
    channel: Channel,
    procedure: Arc<str>,
    delivery: Delivery,
    max_body: usize,
) {
    let Delivery {
        properties,
        data,
        acker,
        delivery_tag,
        ..
    } = delivery;
    let correlation_id = properties.correlation_id().clone();
    let id = Label(
        correlation_id.as_ref().map(|c| c.as_str().to_string()),
        delivery_tag,
    );
    let reply_to = properties
        .reply_to()
        .as_ref()
        .map(|r| r.as_str().to_string())
        .filter(|r| !r.is_empty());
    let encoding = request_encoding(&properties).unwrap_or(Encoding::Json);
    let result = if data.len() > max_body {
        let len = data.len();
        drop(data);
        Err(Error::BodyTooLarge {
            len,
            limit: max_body,
        }
        .into())
    } else {
        match parse_request(&procedure, &properties, data) {
            // No cancel message in the protocol: the call's deadline (its `expiration`) is what
            // stops it early.
            Ok(call) => registry.dispatch(&id, call, CancellationToken::new()).await,
            Err(err) => Err(err.into()),
        }
    };
    let Some(reply_to) = reply_to else {
        tracing::warn!(%id, %procedure, "request without reply_to: its result is dropped");
        let _ = acker.ack(BasicAckOptions::default()).await;
        return;
    };
    if let Err(err) = &result {
        if matches!(err, RpcError::Protocol(_)) {
            tracing::warn!(%id, %procedure, %err, "malformed request");
        }
    }
    let reply = ReplyBody::encode(encoding, result);
    let answer = async {
        let published = channel
            .basic_publish(
                "".into(),
                reply_to.as_str().into(),
                BasicPublishOptions::default(),
                &reply.body,
                reply.properties(correlation_id.as_ref()),
            )
            .await;
        match published {
            Ok(_) => {
                if let Err(e) = acker.ack(BasicAckOptions::default()).await {
                    tracing::warn!(%id, error = %e, "could not ack; the broker will redeliver");
                }
            }
            Err(e) => {
                // As aio-pika: a reply that cannot be sent dead-letters its request (back to the
                // caller's reply queue, through rpc.dlx) rather than requeueing it forever. On a
                // dead channel this fails too, and the broker redelivers the request.
                tracing::warn!(%id, error = %e, "could not publish the reply");
                let _ = acker.reject(BasicRejectOptions { requeue: false }).await;
            }
        }
    };
    // Bounded: on a connection the broker reset, lapin may never settle these, and a task
    // left waiting would hold up the consumer's shutdown. The broker redelivers the request.
    if tokio::time::timeout(ANSWER_TIMEOUT, answer).await.is_err() {
        tracing::warn!(%id, "the broker took no reply nor ack in {ANSWER_TIMEOUT:?}; given up");
    }
}

/// How long publishing a reply and acking its request may take before they are given up.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How a request is named in traces: its correlation id, else its delivery tag.
struct Label(Option<String>, u64);

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(id) => f.write_str(id),
            None => write!(f, "delivery-{}", self.1),
        }
    }
}
