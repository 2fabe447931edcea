//! The server half: consumes the request queue of every procedure in a [`Registry`], runs each
//! request and publishes its reply.
//!
//! - Prefetch = the registry's workers (times a batch procedure's batch size) plus a pipeline,
//!   per consumer (`basic.qos` with `global` false), i.e. per procedure queue: a worker that
//!   finishes finds its next request already here instead of waiting a broker round trip, and
//!   the rest stay in the queue for other consumers, or expire there and go back to their
//!   callers. The pipeline is sized by Little's law (`pipeline.rs`): deep for calls much
//!   shorter than a round trip, [`AmqpConfig::prefetch_pipeline`] for heavy ones; a change
//!   is a new consumer with the new prefetch, then the old one cancelled (its requests still
//!   arrive and are served). Never channel-wide: quorum queues do not support it and RabbitMQ
//!   4.3 denies it by default.
//! - Each request is handed to the registry as it arrives (a withdrawable dispatch, see
//!   [`rpc_core::Start`]) and waits in its worker queue: a worker that finishes one finds the
//!   next queued, instead of waiting for the runtime's thread to wake and hand it over (which
//!   doubled a synchronous call's CPU). The prefetch bounds what is held. A request starts only
//!   when a worker takes it (an `async` procedure's at once, so the prefetch also bounds how
//!   many of those run at a time), and is unacked until answered: a consumer that stops or
//!   loses its connection withdraws the ones not started and gives them back to the queue
//!   (closing its channel requeues them) rather than run them.
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures::stream::{SelectAll, Stream, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use rpc_core::{Call, CallResult, Encoding, Registry, RpcError, ServerTask, Start};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use crate::acks::Acks;
use crate::error::Error;
use crate::message::{parse_request, request_encoding, ReplyBody};
use crate::pipeline::Pipeline;
use crate::reconnect::{connect, retry};
use crate::topology::{declare_dlx, declare_request_queue};
use crate::AmqpConfig;

/// One request queue as its consumer sees it: the procedure, its prefetch pipeline and the
/// current consumer's tag. Kept across reconnections (what was measured still holds).
struct Queue {
    procedure: Arc<str>,
    pipeline: Mutex<Pipeline>,
    tag: Mutex<String>,
}

impl Queue {
    fn pipeline(&self) -> MutexGuard<'_, Pipeline> {
        self.pipeline.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tag(&self) -> String {
        self.tag.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One delivery (`Some`), or the end of a consumer's stream (`None`), of a queue's consumer of
/// some generation.
type Item = (Arc<Queue>, u64, Option<lapin::Result<Delivery>>);

/// Every request queue's deliveries: one stream per consumer, a queue's new consumer added
/// when its pipeline changes.
type Deliveries = SelectAll<Pin<Box<dyn Stream<Item = Item> + Send>>>;

/// Numbers the consumers, so that the end of one replaced by a new pipeline is told apart from
/// the broker cancelling the current one.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// One connection's worth of consuming: the channel and the merged request streams.
struct Session {
    connection: Connection,
    channel: Channel,
    /// The channel's acks, batched.
    acks: Arc<Acks>,
    deliveries: Deliveries,
    /// Asks for a queue's pipeline to change; the new consumers come back on `consumers`.
    changes: mpsc::UnboundedSender<(Arc<Queue>, u16)>,
    consumers: mpsc::UnboundedReceiver<Pin<Box<dyn Stream<Item = Item> + Send>>>,
    _changer: AbortOnDropHandle<()>,
    _acker: AbortOnDropHandle<()>,
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
    let queues = queues(&config, &registry);
    let session = open(&config, &registry, &queues).await?;
    run(config, registry, queues, session, shutdown).await;
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
        let queues = queues(&config, &registry);
        let session = open(&config, &registry, &queues).await?;
        let task = ServerTask::spawn(|shutdown| run(config, registry, queues, session, shutdown));
        Ok(Self { task })
    }

    /// Stops taking requests, finishes and answers the ones it holds, and returns.
    pub async fn shutdown(self) {
        self.task.shutdown().await;
    }
}

/// Each procedure's queue with its pipeline: worker places are the workers, times the batch
/// size for a batch procedure (so that a batch can form without this consumer holding work it
/// could not start), and the pipeline starts at `prefetch_pipeline`.
fn queues(config: &AmqpConfig, registry: &Registry) -> Vec<Arc<Queue>> {
    registry
        .procedure_names()
        .into_iter()
        .map(|procedure| {
            let batch = registry.batch_size(&procedure);
            let places =
                u16::try_from(registry.workers().saturating_mul(batch)).unwrap_or(u16::MAX);
            let pipeline = Pipeline::new(
                places,
                config.prefetch_pipeline,
                config.max_prefetch_pipeline,
            );
            Arc::new(Queue {
                procedure: procedure.into(),
                pipeline: Mutex::new(pipeline),
                tag: Mutex::new(String::new()),
            })
        })
        .collect()
}

async fn open(
    config: &AmqpConfig,
    registry: &Registry,
    queues: &[Arc<Queue>],
) -> Result<Session, Error> {
    let connection = connect(config).await?;
    match declare_and_consume(&connection, config, queues).await {
        Ok((channel, deliveries)) => {
            tracing::info!(
                url = %config.url,
                procedures = ?registry.procedure_names(),
                workers = registry.workers(),
                "AMQP consumer ready"
            );
            let (changes, requests) = mpsc::unbounded_channel();
            let (added, consumers) = mpsc::unbounded_channel();
            let changer = tokio::spawn(change_pipelines(channel.clone(), requests, added));
            let acks = Acks::new(channel.clone());
            let acker = tokio::spawn(acks.clone().run());
            Ok(Session {
                connection,
                acks,
                channel,
                deliveries,
                changes,
                consumers,
                _changer: AbortOnDropHandle::new(changer),
                _acker: AbortOnDropHandle::new(acker),
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
    queues: &[Arc<Queue>],
) -> lapin::Result<(Channel, Deliveries)> {
    let channel = connection.create_channel().await?;
    declare_dlx(&channel).await?;
    let mut deliveries = Deliveries::new();
    for queue in queues {
        declare_request_queue(&channel, &queue.procedure, config).await?;
        let prefetch = queue.pipeline().prefetch();
        deliveries.push(consume(&channel, queue, prefetch).await?);
    }
    if queues.is_empty() {
        // Nothing to serve: wait for shutdown rather than see an ended stream as a lost broker.
        deliveries.push(futures::stream::pending().boxed());
    }
    Ok((channel, deliveries))
}

/// Starts a consumer of `queue` with `prefetch` (per consumer, never channel-wide: applies to
/// the basic.consume after it) and makes it the queue's current one.
async fn consume(
    channel: &Channel,
    queue: &Arc<Queue>,
    prefetch: u16,
) -> lapin::Result<Pin<Box<dyn Stream<Item = Item> + Send>>> {
    channel
        .basic_qos(prefetch, BasicQosOptions { global: false })
        .await?;
    let consumer = channel
        .basic_consume(
            queue.procedure.as_ref().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
    queue.pipeline().consuming(generation, prefetch);
    *queue.tag.lock().unwrap_or_else(|e| e.into_inner()) = consumer.tag().as_str().to_string();
    let end = futures::stream::once({
        let queue = queue.clone();
        async move { (queue, generation, None) }
    });
    let queue = queue.clone();
    Ok(consumer
        .map(move |d| (queue.clone(), generation, Some(d)))
        .chain(end)
        .boxed())
}

/// Changes queues' pipelines, one at a time (a `basic.qos` applies to the `basic.consume`
/// after it on the channel): a new consumer with the new prefetch, handed to the serving loop,
/// then the old one cancelled. The old consumer's requests still arrive and are served and
/// acked as before; it stops being sent new ones.
async fn change_pipelines(
    channel: Channel,
    mut requests: mpsc::UnboundedReceiver<(Arc<Queue>, u16)>,
    added: mpsc::UnboundedSender<Pin<Box<dyn Stream<Item = Item> + Send>>>,
) {
    while let Some((queue, pipeline)) = requests.recv().await {
        let (old, places) = {
            let p = queue.pipeline();
            (p.current(), p.prefetch() - p.current())
        };
        let old_tag = queue.tag();
        match consume(&channel, &queue, places.saturating_add(pipeline)).await {
            Ok(stream) => {
                tracing::debug!(procedure = %queue.procedure, old, pipeline, "prefetch pipeline changed");
                if added.send(stream).is_err() {
                    return;
                }
                let cancel =
                    channel.basic_cancel(old_tag.as_str().into(), BasicCancelOptions::default());
                if let Err(e) = cancel.await {
                    tracing::debug!(error = %e, "could not cancel the replaced consumer");
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "could not change the prefetch pipeline");
                queue.pipeline().change_failed();
            }
        }
    }
}

async fn run(
    config: AmqpConfig,
    registry: Arc<Registry>,
    queues: Vec<Arc<Queue>>,
    mut session: Session,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    // Fired when this session ends (stopped or lost): the requests that have not started are
    // withdrawn.
    let mut ended = shutdown.child_token();
    // Registered once, not once per delivery (a token's `cancelled()` locks it on each making,
    // polling and dropping).
    let stopped = shutdown.clone().cancelled_owned();
    tokio::pin!(stopped);
    loop {
        let lost = loop {
            let next = tokio::select! {
                _ = &mut stopped => break None,
                Some(consumer) = session.consumers.recv() => {
                    session.deliveries.push(consumer);
                    continue;
                }
                next = session.deliveries.next() => next,
            };
            match next {
                Some((queue, generation, Some(Ok(delivery)))) => {
                    session.acks.delivered(delivery.delivery_tag);
                    queue.pipeline().delivered(generation);
                    // Handed to the registry at once: a worker finds it queued. Unacked until
                    // answered, and withdrawn if the session ends before it started.
                    let request = Request {
                        registry: registry.clone(),
                        channel: session.channel.clone(),
                        acks: session.acks.clone(),
                        changes: session.changes.clone(),
                        queue,
                        generation,
                        ended: ended.clone(),
                        max_body: config.max_body,
                    };
                    tracker.spawn(request.handle(delivery));
                }
                Some((_, _, Some(Err(e)))) => {
                    break Some(Error::broker("connection to the broker lost")(e))
                }
                Some((queue, generation, None)) => {
                    if generation == queue.pipeline().generation() {
                        break Some(Error::ConsumerCancelled(queue.procedure.to_string()));
                    }
                    // A consumer replaced by one with another pipeline: all its requests came.
                }
                None => break Some(Error::ConsumerCancelled("every queue".into())),
            }
        };
        let Some(error) = lost else { break };
        tracing::warn!(%error, "AMQP consumer lost its connection; reconnecting");
        // The broker redelivers what this session held: what has not started is not run here.
        ended.cancel();
        ended = shutdown.child_token();
        // Requests still running cannot be acked on the dead channel: the broker redelivers
        // them. Close explicitly in case only the channel died.
        crate::reconnect::close(&session.connection, "reconnecting").await;
        let Some(next) = retry(&config, &shutdown, "reconnecting the AMQP consumer", || {
            open(&config, &registry, &queues)
        })
        .await
        else {
            break;
        };
        session = next;
    }
    // Stop deliveries, answer what we hold, then close: unread prefetched requests go back to
    // the queue for other consumers.
    for queue in &queues {
        let cancel = session
            .channel
            .basic_cancel(queue.tag().as_str().into(), BasicCancelOptions::default());
        // Bounded: a dead connection may never answer.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), cancel).await;
    }
    tracker.close();
    tracker.wait().await;
    // The last answers' acks, before the channel closes (which would requeue them). Bounded:
    // a dead connection may never take them, and the broker then redelivers.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), session.acks.write()).await;
    crate::reconnect::close(&session.connection, "consumer stopped").await;
    tracing::info!("AMQP consumer stopped");
}

/// What a request's task needs besides the delivery.
struct Request {
    registry: Arc<Registry>,
    channel: Channel,
    acks: Arc<Acks>,
    changes: mpsc::UnboundedSender<(Arc<Queue>, u16)>,
    queue: Arc<Queue>,
    /// The consumer it came from.
    generation: u64,
    /// Fired when its session ends: withdraw the request if it has not started.
    ended: CancellationToken,
    max_body: usize,
}

impl Request {
    /// Runs one request, publishes its reply, then acks it; or, when its session ends before
    /// the request started, leaves it unacked and unanswered. A body over `max_body` bytes is
    /// answered with a protocol error, not decoded. Tells the queue's pipeline how long the
    /// request ran and when it was acked, and asks for the pipeline to change when Little's
    /// law says so.
    async fn handle(self, delivery: Delivery) {
        let Request {
            registry,
            channel,
            acks,
            changes,
            queue,
            generation,
            ended,
            max_body,
        } = self;
        let Delivery {
            properties,
            data,
            delivery_tag,
            ..
        } = delivery;
        let procedure = &queue.procedure;
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
        let received = Instant::now();
        let start = Start::new();
        let result = if data.len() > max_body {
            let len = data.len();
            drop(data);
            Err(Error::BodyTooLarge {
                len,
                limit: max_body,
            }
            .into())
        } else {
            match parse_request(procedure, &properties, data) {
                Ok(call) => {
                    let Some(result) =
                        run_unless_withdrawn(&registry, &id, call, &ended, &start).await
                    else {
                        tracing::debug!(%id, "not started when the session ended: given back");
                        return;
                    };
                    result
                }
                Err(err) => Err(err.into()),
            }
        };
        // Measured where the call ran: with the elapsed time seen from here, a synchronous
        // call's result waiting for this task to be polled would count, and that wait grows
        // with the pipeline the run time sizes (the pipeline of a cheap procedure swung
        // between 64 and 16 every second or two).
        let ran = start
            .ran_for()
            .unwrap_or_else(|| start.started_at().unwrap_or(received).elapsed());
        queue.pipeline().ran(ran);
        let settled = async {
            let Some(reply_to) = reply_to else {
                tracing::warn!(%id, %procedure, "request without reply_to: its result is dropped");
                acks.answered(delivery_tag);
                return;
            };
            if let Err(err) = &result {
                if matches!(err, RpcError::Protocol(_)) {
                    tracing::warn!(%id, %procedure, %err, "malformed request");
                }
            }
            answer(
                &channel,
                &acks,
                &id,
                &reply_to,
                encoding,
                result,
                correlation_id,
            )
            .await;
        };
        // Bounded: on a connection the broker reset, lapin may never settle these, and a task
        // left waiting would hold up the consumer's shutdown. The broker redelivers the
        // request.
        if tokio::time::timeout(ANSWER_TIMEOUT, settled).await.is_err() {
            tracing::warn!(%id, "the broker took no reply nor ack in {ANSWER_TIMEOUT:?}; given up");
        }
        let change = {
            let mut pipeline = queue.pipeline();
            pipeline.acked(generation);
            pipeline.change()
        };
        if let Some(pipeline) = change {
            let _ = changes.send((queue, pipeline));
        }
    }
}

/// Runs `call`, unless its session ends (`ended`) before it starts: then it is withdrawn and
/// never runs, and `None`. Left unacked, the request goes back to the queue when the channel
/// closes.
async fn run_unless_withdrawn(
    registry: &Registry,
    id: &Label,
    call: Call,
    ended: &CancellationToken,
    start: &Start,
) -> Option<CallResult> {
    // No cancel message in the protocol: the call's deadline (its `expiration`) is what stops
    // it early. (`ended` is registered once per request: a lock or two, beside a broker round
    // trip.)
    let dispatched =
        registry.dispatch_withdrawable(id, call, CancellationToken::new(), start.clone());
    tokio::pin!(dispatched);
    tokio::select! {
        biased;
        result = &mut dispatched => Some(result),
        () = ended.cancelled() => {
            if start.withdraw() {
                return None;
            }
            Some(dispatched.await)
        }
    }
}

/// Publishes the reply to `reply_to`, then acks the request (in a batch, see `acks.rs`); a
/// reply that cannot be published dead-letters its request.
async fn answer(
    channel: &Channel,
    acks: &Acks,
    id: &Label,
    reply_to: &str,
    encoding: Encoding,
    result: Result<Vec<u8>, RpcError>,
    correlation_id: Option<lapin::types::ShortString>,
) {
    let reply = ReplyBody::encode(encoding, result);
    let published = channel
        .basic_publish(
            "".into(),
            reply_to.into(),
            BasicPublishOptions::default(),
            &reply.body,
            reply.properties(correlation_id.as_ref()),
        )
        .await;
    match published {
        Ok(_) => acks.answered(id.1),
        Err(e) => {
            // As aio-pika: a reply that cannot be sent dead-letters its request (back to the
            // caller's reply queue, through rpc.dlx) rather than requeueing it forever. On a
            // dead channel this fails too, and the broker redelivers the request.
            tracing::warn!(%id, error = %e, "could not publish the reply");
            acks.reject(id.1).await;
        }
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
