//! Helpers shared by the transport's tests: names, the broker, raw lapin access.
//!
//! Every test runs against the real broker (`AMQP_URL`, `RABBITMQ_URL` or the local default;
//! `scripts/start_rabbitmq.sh` starts one) and fails loudly without one.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use rpc_core::{Client, Registry};
use transport_amqp::topology::{declare_dlx, long_string, DLX_NAME};
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
    transport_amqp::topology::delete_request_queues(&config(), &queues)
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
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
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

/// Binds `reply_queue` to the dead-letter exchange by its `From` header, as a client's reply
/// queue is, so that a request expiring in its queue comes back to it.
pub async fn bind_to_dlx(channel: &Channel, reply_queue: &str) {
    declare_dlx(channel).await.expect("declare the dlx");
    let mut binding = FieldTable::default();
    binding.insert("From".into(), long_string(reply_queue));
    binding.insert("x-match".into(), long_string("any"));
    channel
        .queue_bind(
            reply_queue.into(),
            DLX_NAME.into(),
            "".into(),
            QueueBindOptions::default(),
            binding,
        )
        .await
        .expect("bind the reply queue to the dlx");
}
