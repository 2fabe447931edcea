//! Helpers shared by the transport's tests: names, the broker, raw lapin access.
//!
//! Every test runs against the real broker (`AMQP_URL`, `RABBITMQ_URL` or the local default;
//! `scripts/start_rabbitmq.sh` starts one) and fails loudly without one.

#![allow(dead_code)]

pub mod child;
mod peer_queue;
pub mod python_venv;

use peer_queue::long_string;
// Each test target uses some of these.
#[allow(unused_imports)]
pub use peer_queue::{declare_request_queue, DLX};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use rpc_core::{Client, ErrorKind, Registry};
use transport_amqp::{AmqpConfig, AmqpServer, AmqpTransport, AmqpUrl, Topology};

/// A name no other test (or concurrent run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() % 1_000_000_000);
    format!("{prefix}_{}_{now}_{n}", std::process::id())
}

/// The broker configuration, with quick reconnection for the tests: the broker of `AMQP_URL`,
/// `RABBITMQ_URL` or the local default, in the topology of `RPC_AMQP_TOPOLOGY` (quorum by
/// default), so that the whole suite runs in either.
pub fn config() -> AmqpConfig {
    AmqpConfig::new(AmqpUrl::resolve(None))
        .with_topology(topology())
        .with_reconnect_delays(Duration::from_millis(100), Duration::from_secs(1))
}

/// The topology of `RPC_AMQP_TOPOLOGY`, else the default; a bad value fails loudly.
pub fn topology() -> Topology {
    match std::env::var("RPC_AMQP_TOPOLOGY") {
        Ok(name) if !name.trim().is_empty() => name
            .parse()
            .unwrap_or_else(|e| panic!("RPC_AMQP_TOPOLOGY: {e}")),
        _ => Topology::default(),
    }
}

/// A raw lapin connection and channel, for publishing and inspecting by hand.
pub async fn raw_channel() -> (Connection, Channel) {
    let url = config().url;
    let connection = Connection::connect(url.as_str(), ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("no RabbitMQ at {url} (scripts/start_rabbitmq.sh): {e}"));
    let channel = connection.create_channel().await.expect("a channel");
    (connection, channel)
}

/// Declares an exclusive server-named queue and consumes it with no-ack.
pub async fn raw_reply_queue(channel: &Channel) -> (String, Consumer) {
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel
        .queue_declare("".into(), options, FieldTable::default())
        .await
        .expect("a reply queue");
    let name = queue.name().as_str().to_string();
    let consumer = channel
        .basic_consume(
            name.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume the reply queue");
    (name, consumer)
}

/// The number of (ready, consumers) of an existing queue, from a passive declaration.
pub async fn queue_counts(channel: &Channel, queue: &str) -> (u32, u32) {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
        .expect("the queue exists");
    (queue.message_count(), queue.consumer_count())
}

/// Polls `check` every 50 ms until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Deletes the request queues `handler.method` the test declared: they outlive consumers.
pub async fn delete_queues(handler: &str, methods: &[&str]) {
    let queues: Vec<String> = methods.iter().map(|m| format!("{handler}.{m}")).collect();
    transport_amqp::delete_request_queues(&config(), &queues)
        .await
        .expect("delete the test's queues");
}

/// The first of two consumers sharing a queue.
pub struct First;

#[rpc_core::handler]
impl First {
    /// Works `ms` milliseconds, says who did.
    pub fn work(ms: u64) -> String {
        std::thread::sleep(Duration::from_millis(ms));
        "first".into()
    }
}

/// The second of two consumers sharing a queue.
pub struct Second;

#[rpc_core::handler]
impl Second {
    /// Works `ms` milliseconds, says who did.
    pub fn work(ms: u64) -> String {
        std::thread::sleep(Duration::from_millis(ms));
        "second".into()
    }
}

static RUNS: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

/// Counts its runs per tag.
pub struct Counter;

#[rpc_core::handler]
impl Counter {
    /// How many times it ran with `tag`, this run included.
    pub fn count(tag: String) -> u64 {
        let mut runs = RUNS.lock().unwrap_or_else(|e| e.into_inner());
        let n = runs
            .get_or_insert_with(HashMap::new)
            .entry(tag)
            .or_insert(0);
        *n += 1;
        *n
    }
}

/// A consumer of `registry` on the broker, serving when this returns.
pub async fn serve(registry: Registry) -> AmqpServer {
    AmqpServer::start(config(), Arc::new(registry))
        .await
        .expect("a consumer on the broker (scripts/start_rabbitmq.sh)")
}

/// A [`Counter`] served as `<prefix>-<unique>` with `config`: its name, the queue of its
/// `count` procedure (`<name>.count`), and the consumer.
pub async fn serve_counter(prefix: &str, config: AmqpConfig) -> (String, String, AmqpServer) {
    let name = unique(prefix);
    let mut registry = Registry::new();
    registry.register_as(name.clone(), Counter);
    let server = AmqpServer::start(config, Arc::new(registry))
        .await
        .expect("a consumer on the broker (scripts/start_rabbitmq.sh)");
    let queue = format!("{name}.count");
    (name, queue, server)
}

/// A client on the broker.
pub async fn client() -> Client {
    Client::new(
        AmqpTransport::connect(config())
            .await
            .expect("an AMQP client"),
    )
}

/// The runtime the tests run on: two workers, the machines' core count.
pub fn runtime() -> tokio::runtime::Runtime {
    test_support::runtime(2)
}

/// Publishes `body` to `queue` through the default exchange, by hand.
pub async fn publish(channel: &Channel, queue: &str, properties: BasicProperties, body: &[u8]) {
    channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .expect("publish")
        .await
        .expect("published");
}

/// The next message on `replies`, within a generous 30 s.
pub async fn next_reply(replies: &mut Consumer) -> lapin::message::Delivery {
    use futures::StreamExt;
    tokio::time::timeout(Duration::from_secs(30), replies.next())
        .await
        .expect("a reply in time")
        .expect("the reply consumer ended")
        .expect("a delivery")
}

/// True once `queue` holds no message, acked or not. Call it after the queue's consumer
/// stopped: a message a consumer holds unacked is not counted, and goes back to the queue when
/// that consumer stops.
pub async fn emptied(channel: &Channel, queue: &str) -> bool {
    eventually(Duration::from_secs(10), || async {
        queue_counts(channel, queue).await.0 == 0
    })
    .await
}

/// The properties of a JSON request as aio-pika sends it: `type` call, the correlation id,
/// `reply_to` and the `From` header naming the reply queue.
pub fn call_properties(correlation_id: &str, reply_to: &str) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("From".into(), long_string(reply_to));
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_type("call".into())
        .with_correlation_id(correlation_id.into())
        .with_reply_to(reply_to.into())
        .with_headers(headers)
}

/// The `type` property of a message: `call`, `result` or `error`.
pub fn message_type(delivery: &lapin::message::Delivery) -> Option<&str> {
    delivery.properties.kind().as_ref().map(|t| t.as_str())
}

/// A reply read as a foreign peer reads it: a `result` is its body; an `error` is the kind
/// it names (JSON: `{"error": {"type": ...}}`, as aio-pika's; bincode: rpc-core's
/// `Result<bytes, RpcError>`; text: `ERROR <kind>: ...`). Panics on anything else.
pub fn reply_of(delivery: &lapin::message::Delivery) -> Result<Vec<u8>, ErrorKind> {
    let content_type = delivery
        .properties
        .content_type()
        .as_ref()
        .map_or("application/json", |c| c.as_str());
    match message_type(delivery) {
        Some("result") => Ok(delivery.data.clone()),
        Some("error") if content_type == transport_amqp::BINCODE_CONTENT_TYPE => {
            let reply: Result<serde_bytes::ByteBuf, rpc_core::RpcError> =
                rpc_core::encoding::from_bincode(&delivery.data).expect("a bincode reply");
            Err(reply.expect_err("an error reply").kind())
        }
        Some("error") if content_type == "text/plain" => {
            let text = String::from_utf8_lossy(&delivery.data);
            let kind = text
                .strip_prefix("ERROR ")
                .and_then(|rest| rest.split(':').next())
                .expect("ERROR <kind>: <message>");
            Err(kind.parse().expect("a known kind"))
        }
        Some("error") => {
            let body: serde_json::Value =
                serde_json::from_slice(&delivery.data).expect("a JSON error reply");
            let kind = body["error"]["type"].as_str().expect("error.type");
            Err(kind.parse().expect("a known kind"))
        }
        other => panic!("not a reply: type {other:?}"),
    }
}

/// The `reason` of the newest `x-death` entry of a dead-lettered message (`expired`,
/// `delivery_limit`, `rejected`).
pub fn death_reason(delivery: &lapin::message::Delivery) -> Option<String> {
    let headers = delivery.properties.headers().as_ref()?;
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(newest) = deaths.as_slice().first()? else {
        return None;
    };
    match newest.inner().get("reason")? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// Binds `reply_queue` to the dead-letter exchange by its `From` header, as a client's reply
/// queue is, so that a request expiring in its queue comes back to it.
pub async fn bind_to_dlx(channel: &Channel, reply_queue: &str) {
    let options = ExchangeDeclareOptions {
        auto_delete: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            DLX.into(),
            ExchangeKind::Headers,
            options,
            FieldTable::default(),
        )
        .await
        .expect("declare the dlx");
    let mut binding = FieldTable::default();
    binding.insert("From".into(), long_string(reply_queue));
    binding.insert("x-match".into(), long_string("any"));
    channel
        .queue_bind(
            reply_queue.into(),
            DLX.into(),
            "".into(),
            QueueBindOptions::default(),
            binding,
        )
        .await
        .expect("bind the reply queue to the dlx");
}

/// How many times each task ran, by tag, across every consumer of this process.
static TALLY: Mutex<Option<HashMap<u64, u32>>> = Mutex::new(None);

/// Tasks that count their runs, for the runs under a broker's loss.
pub struct Tally;

#[rpc_core::handler]
impl Tally {
    /// Counts a run of task `tag`, works 20 ms, returns the tag.
    pub fn task(tag: u64) -> u64 {
        *TALLY
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(HashMap::new)
            .entry(tag)
            .or_insert(0) += 1;
        std::thread::sleep(Duration::from_millis(20));
        tag
    }

    /// Sleeps `ms` milliseconds.
    pub fn sleep(ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// How many of the tasks `tags` ran more than once.
pub fn run_twice(tags: std::ops::Range<u64>) -> usize {
    let tally = TALLY.lock().unwrap_or_else(|e| e.into_inner());
    tags.filter(|tag| {
        tally
            .as_ref()
            .and_then(|t| t.get(tag))
            .copied()
            .unwrap_or(0)
            > 1
    })
    .count()
}

/// Tasks sent to [`Tally::task`] at a steady rate in the background, each answer timed.
pub struct Load {
    calls: tokio::task::JoinHandle<Vec<(u64, rpc_core::CallResult)>>,
    answers: Arc<Mutex<Vec<std::time::Instant>>>,
    /// The tags sent: `first..first + count`.
    pub tags: std::ops::Range<u64>,
}

/// What a [`Load`] gave.
pub struct Outcome {
    /// Tasks sent.
    pub sent: usize,
    /// Tasks answered with their own tag.
    pub answered: usize,
    /// Tasks failed, with their errors.
    pub failed: Vec<(u64, rpc_core::RpcError)>,
    /// When each answer came.
    pub answers: Vec<std::time::Instant>,
}

impl Load {
    /// Sends `count` tasks to `procedure` (a [`Tally::task`]) tagged from `first`, one every
    /// `interval`, each its own call through `client`.
    pub fn start(
        client: Client,
        procedure: String,
        first: u64,
        count: u64,
        interval: Duration,
    ) -> Load {
        let answers: Arc<Mutex<Vec<std::time::Instant>>> = Arc::default();
        let timed = answers.clone();
        let calls = tokio::spawn(async move {
            let mut calls = Vec::new();
            let mut tick = tokio::time::interval(interval);
            for tag in first..first + count {
                tick.tick().await;
                let client = client.clone();
                let procedure = procedure.clone();
                let timed = timed.clone();
                calls.push(tokio::spawn(async move {
                    let result = client.call::<_, u64>(&procedure, &(tag,)).await;
                    let result = match result {
                        Ok(back) if back == tag => {
                            timed
                                .lock()
                                .expect("answers")
                                .push(std::time::Instant::now());
                            Ok(Vec::new())
                        }
                        Ok(other) => Err(rpc_core::RpcError::Protocol(format!(
                            "task {tag} answered as {other}"
                        ))),
                        Err(err) => Err(err),
                    };
                    (tag, result)
                }));
            }
            let mut results = Vec::new();
            for call in calls {
                results.push(call.await.expect("a call's task"));
            }
            results
        });
        Load {
            calls,
            answers,
            tags: first..first + count,
        }
    }

    /// Waits until `count` tasks have been answered in all.
    pub async fn wait_answers(&self, count: usize) {
        let answered = eventually(Duration::from_secs(120), || async {
            self.answers.lock().expect("answers").len() >= count
        })
        .await;
        assert!(answered, "fewer than {count} answers in 120 s");
    }

    /// How many answers per second came in the `window` before now.
    pub fn rate_now(&self, window: Duration) -> f64 {
        let now = std::time::Instant::now();
        let answers = self.answers.lock().expect("answers");
        let recent = answers
            .iter()
            .filter(|at| now.duration_since(**at) <= window)
            .count();
        recent as f64 / window.as_secs_f64()
    }

    /// Waits for every task's outcome.
    pub async fn finish(self) -> Outcome {
        let results = self.calls.await.expect("the load's task");
        let answers = self.answers.lock().expect("answers").clone();
        let sent = results.len();
        let mut failed = Vec::new();
        for (tag, result) in results {
            if let Err(err) = result {
                failed.push((tag, err));
            }
        }
        Outcome {
            sent,
            answered: sent - failed.len(),
            failed,
            answers,
        }
    }
}

impl Outcome {
    /// The first answer after `at`, as a delay from it.
    pub fn first_answer_after(&self, at: std::time::Instant) -> Option<Duration> {
        self.answers
            .iter()
            .filter(|a| **a > at)
            .map(|a| a.duration_since(at))
            .min()
    }

    /// The last answer, as a delay from `at`.
    pub fn last_answer_after(&self, at: std::time::Instant) -> Option<Duration> {
        self.answers
            .iter()
            .filter(|a| **a > at)
            .map(|a| a.duration_since(at))
            .max()
    }

    /// The longest time without any answer, from `at` on: how long the service stopped.
    pub fn longest_pause_after(&self, at: std::time::Instant) -> Duration {
        let mut times: Vec<std::time::Instant> =
            self.answers.iter().copied().filter(|a| *a > at).collect();
        times.sort_unstable();
        let mut previous = at;
        let mut longest = Duration::ZERO;
        for time in times {
            longest = longest.max(time.duration_since(previous));
            previous = time;
        }
        longest
    }

    /// How long after `at` the answers came at `rate` per second again: the start of the
    /// first one-second window (stepping by 100 ms) holding at least 90% of `rate` answers.
    pub fn back_to_rate(&self, at: std::time::Instant, rate: f64) -> Option<Duration> {
        let window = Duration::from_secs(1);
        let last = self.answers.iter().max()?;
        let mut start = at;
        while start + window <= *last + Duration::from_millis(1) {
            let count = self
                .answers
                .iter()
                .filter(|a| **a >= start && **a < start + window)
                .count();
            if count as f64 >= 0.9 * rate {
                return Some(start.duration_since(at));
            }
            start += Duration::from_millis(100);
        }
        None
    }
}
