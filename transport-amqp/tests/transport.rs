//! The AMQP transport on a real broker: routing failures, load sharing, a consumer killed
//! mid-task, malformed messages published by hand, expiry through the dead-letter exchange,
//! and direct reply-to.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{BasicPublishOptions, QueueBindOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use rpc_core::{Call, Client, Encoding, Registry, RpcError, Transport};
use tokio::io::{AsyncBufReadExt, BufReader};
use transport_amqp::message::{decode_reply, MessageType};
use transport_amqp::topology::{declare_dlx, declare_request_queue, long_string, DLX_NAME};
use transport_amqp::{AmqpServer, AmqpTransport, ReplyMode};

use support::{
    config, delete_queues, eventually, queue_counts, raw_channel, raw_reply_queue, unique,
};

/// The first of two consumers sharing a queue.
struct First;

#[rpc_core::handler]
impl First {
    /// Works `ms` milliseconds, says who did.
    pub fn work(ms: u64) -> String {
        std::thread::sleep(Duration::from_millis(ms));
        "first".into()
    }
}

/// The second of two consumers sharing a queue.
struct Second;

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
struct Counter;

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

async fn serve(registry: Registry) -> AmqpServer {
    AmqpServer::start(config(), Arc::new(registry))
        .await
        .expect("a consumer on the broker (scripts/start_rabbitmq.sh)")
}

async fn client() -> Client {
    Client::new(
        AmqpTransport::connect(config())
            .await
            .expect("an AMQP client"),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[test]
fn unroutable_call_fails_fast() {
    runtime().block_on(async {
        let client = client().await.with_timeout(Duration::from_secs(10));
        let started = Instant::now();
        let call = Call::new(
            format!("{}.add", unique("nobody")),
            Encoding::Json,
            b"{}".to_vec(),
        );
        match client.call_raw(call).await {
            Err(RpcError::UnknownProcedure(message)) => assert!(message.contains("nobody")),
            other => panic!("expected unknown procedure, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    });
}

#[test]
fn two_consumers_share_the_load() {
    runtime().block_on(async {
        let name = unique("shared");
        let mut first = Registry::new();
        first.register_as(name.clone(), First);
        let mut second = Registry::new();
        second.register_as(name.clone(), Second);
        let (a, b) = (serve(first).await, serve(second).await);
        let client = client().await;
        let calls = (0..16).map(|_| {
            let client = client.clone();
            let procedure = format!("{name}.work");
            tokio::spawn(async move { client.call::<_, String>(&procedure, &(100u64,)).await })
        });
        let mut by_consumer: HashMap<String, usize> = HashMap::new();
        for call in futures::future::join_all(calls).await {
            let who = call.expect("task").expect("call");
            *by_consumer.entry(who).or_default() += 1;
        }
        // 16 calls of 100 ms, one worker each: both consumers took a fair share.
        assert!(
            by_consumer.get("first").copied().unwrap_or(0) >= 4,
            "{by_consumer:?}"
        );
        assert!(
            by_consumer.get("second").copied().unwrap_or(0) >= 4,
            "{by_consumer:?}"
        );
        a.shutdown().await;
        b.shutdown().await;
        delete_queues(&name, &["work"]).await;
    });
}

/// The procedure of the consumer that gets killed: announces that it started, then works.
struct Doomed;

#[rpc_core::handler]
impl Doomed {
    /// Prints `STARTED`, works `ms` milliseconds.
    pub fn work(ms: u64) -> String {
        println!("STARTED");
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_millis(ms));
        "doomed".into()
    }
}

const CHILD_VARIABLE: &str = "TRANSPORT_AMQP_CHILD_HANDLER";

/// Not a test of its own: the consumer process that `killed_consumer_...` starts (this same
/// binary, with the handler name in the environment) and kills. Does nothing otherwise.
#[test]
fn child_consumer() {
    let Ok(name) = std::env::var(CHILD_VARIABLE) else {
        return;
    };
    runtime().block_on(async {
        let mut registry = Registry::new();
        registry.register_as(name, Doomed);
        let _server = serve(registry).await;
        println!("CONSUMING");
        let _ = std::io::stdout().flush();
        // Killed long before this; never linger if the parent died.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

#[test]
fn killed_consumer_leaves_its_request_to_another() {
    runtime().block_on(async {
        let name = unique("doomed");
        let mut child = tokio::process::Command::new(std::env::current_exe().expect("this test"))
            .args([
                "child_consumer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_VARIABLE, &name)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the child consumer");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut wait_for = async |wanted: &str| {
            let found = tokio::time::timeout(Duration::from_secs(20), async {
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.contains(wanted) {
                        return true;
                    }
                }
                false
            });
            assert!(
                found.await.unwrap_or(false),
                "the child never said {wanted}"
            );
        };
        wait_for("CONSUMING").await;

        let client = client().await.with_timeout(Duration::from_secs(30));
        let procedure = format!("{name}.work");
        let call =
            tokio::spawn(async move { client.call::<_, String>(&procedure, &(3_000u64,)).await });
        wait_for("STARTED").await;

        // The survivor subscribes while the child holds the request, then the child dies.
        let mut registry = Registry::new();
        registry.register_as(name.clone(), Second);
        let survivor = serve(registry).await;
        let killed = Instant::now();
        child.start_kill().expect("SIGKILL the child");
        let _ = child.wait().await;

        let result = tokio::time::timeout(Duration::from_secs(15), call)
            .await
            .expect("the call ended")
            .expect("task");
        assert_eq!(
            result,
            Ok("second".to_string()),
            "run again by the survivor, once"
        );
        // The survivor's own 3 s of work, not a timeout.
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "{:?}",
            killed.elapsed()
        );
        survivor.shutdown().await;
        delete_queues(&name, &["work"]).await;
    });
}

/// Publishes `body` to `queue` by hand and returns the reply: (type, content type, body).
async fn publish_by_hand(
    channel: &lapin::Channel,
    queue: &str,
    properties: BasicProperties,
    body: &[u8],
) {
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

#[test]
fn malformed_messages_get_error_replies_and_are_not_requeued() {
    runtime().block_on(async {
        let name = unique("malformed");
        let queue = format!("{name}.count");
        let mut registry = Registry::new();
        registry.register_as(name.clone(), Counter);
        let server = serve(registry).await;
        let (_connection, channel) = raw_channel().await;
        let (reply_queue, mut replies) = raw_reply_queue(&channel).await;

        let cases: [(&str, Option<&str>, &[u8], RpcError); 4] = [
            (
                "garbage-json",
                Some("application/json"),
                b"\x00\xffnot json",
                RpcError::BadArguments(String::new()),
            ),
            (
                "wrong-type",
                Some("image/png"),
                b"{\"tag\": \"x\"}",
                RpcError::Protocol(String::new()),
            ),
            (
                "garbage-bincode",
                Some(transport_amqp::BINCODE_CONTENT_TYPE),
                b"\x01",
                RpcError::BadArguments(String::new()),
            ),
            (
                "missing-args",
                None,
                b"{}",
                RpcError::BadArguments(String::new()),
            ),
        ];
        for (id, content_type, body, expected) in cases {
            let mut properties = BasicProperties::default()
                .with_correlation_id(id.into())
                .with_reply_to(reply_queue.as_str().into());
            if let Some(content_type) = content_type {
                properties = properties.with_content_type(content_type.into());
            }
            publish_by_hand(&channel, &queue, properties, body).await;
            let reply = tokio::time::timeout(Duration::from_secs(10), replies.next())
                .await
                .expect("a reply in time")
                .expect("a reply")
                .expect("a delivery");
            let properties = &reply.properties;
            assert_eq!(
                properties.correlation_id().as_ref().map(|c| c.as_str()),
                Some(id)
            );
            assert_eq!(
                properties.kind().as_ref().map(|t| t.as_str()),
                Some(MessageType::Error.as_str())
            );
            let err = decode_reply(properties, reply.data.clone()).expect_err("an error reply");
            assert_eq!(err.kind(), expected.kind(), "{id}: {err}");
        }

        // No reply_to: run, acked, its result dropped; never requeued.
        let tag = unique("tag");
        let body = serde_json::to_vec(&serde_json::json!({ "tag": tag })).expect("json");
        let properties = BasicProperties::default().with_content_type("application/json".into());
        publish_by_hand(&channel, &queue, properties, &body).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let client = client().await;
        assert_eq!(
            client.call::<_, u64>(&queue, &(tag,)).await,
            Ok(2),
            "ran exactly once before"
        );
        assert!(
            eventually(Duration::from_secs(5), || async {
                queue_counts(&channel, &queue).await.0 == 0
            })
            .await,
            "the queue emptied"
        );
        server.shutdown().await;
        delete_queues(&name, &["count"]).await;
    });
}

#[test]
fn expired_request_comes_back_through_the_dead_letter_exchange() {
    runtime().block_on(async {
        let (_connection, channel) = raw_channel().await;
        let queue = unique("unserved");
        declare_request_queue(&channel, &queue, &config())
            .await
            .expect("declare");
        declare_dlx(&channel).await.expect("dlx");
        let (reply_queue, mut replies) = raw_reply_queue(&channel).await;
        let mut binding = FieldTable::default();
        binding.insert("From".into(), long_string(&reply_queue));
        binding.insert("x-match".into(), long_string("any"));
        channel
            .queue_bind(
                reply_queue.as_str().into(),
                DLX_NAME.into(),
                "".into(),
                QueueBindOptions::default(),
                binding,
            )
            .await
            .expect("bind");
        let call = Call::new(queue.clone(), Encoding::Json, b"{}".to_vec())
            .with_timeout(Duration::from_millis(200));
        let properties =
            transport_amqp::message::request_properties(&call, "expiring", &reply_queue);
        let started = Instant::now();
        publish_by_hand(&channel, &queue, properties, b"{}").await;
        let back = tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await
            .expect("dead-lettered in time")
            .expect("a message")
            .expect("a delivery");
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            back.properties.kind().as_ref().map(|t| t.as_str()),
            Some("call")
        );
        assert_eq!(
            decode_reply(&back.properties, back.data.clone()),
            Err(RpcError::DeadlineExceeded)
        );
        let _ = channel
            .queue_delete(
                queue.as_str().into(),
                lapin::options::QueueDeleteOptions::default(),
            )
            .await;
    });
}

#[test]
fn direct_reply_to_round_trips() {
    runtime().block_on(async {
        let name = unique("direct");
        let mut registry = Registry::new();
        registry.register_as(name.clone(), Counter);
        let server = serve(registry).await;
        let transport = AmqpTransport::connect(config().with_reply_mode(ReplyMode::DirectReplyTo))
            .await
            .expect("a direct reply-to client");
        assert_eq!(
            transport.reply_queue().as_deref(),
            Some("amq.rabbitmq.reply-to")
        );
        let call = Call::new(
            format!("{name}.count"),
            Encoding::Json,
            br#"{"tag": "d"}"#.to_vec(),
        );
        assert_eq!(transport.call(call).await.as_deref(), Ok(&b"1"[..]));
        let unknown = Call::new(format!("{name}.nothing"), Encoding::Json, b"{}".to_vec());
        assert!(matches!(
            transport.call(unknown).await,
            Err(RpcError::UnknownProcedure(_))
        ));
        server.shutdown().await;
        delete_queues(&name, &["count"]).await;
    });
}

#[test]
fn a_deleted_queue_is_declared_again() {
    runtime().block_on(async {
        let name = unique("deleted");
        let mut registry = Registry::new();
        registry.register_as(name.clone(), Counter);
        let server = serve(registry).await;
        let client = client().await.with_timeout(Duration::from_secs(10));
        let queue = format!("{name}.count");
        assert_eq!(client.call::<_, u64>(&queue, &(name.clone(),)).await, Ok(1));
        // Someone deletes the queue under the consumer: it re-declares it and serves on.
        delete_queues(&name, &["count"]).await;
        let served = eventually(Duration::from_secs(10), || async {
            client
                .call::<_, u64>(&queue, &(name.clone(),))
                .await
                .is_ok()
        })
        .await;
        assert!(served, "the consumer never came back");
        server.shutdown().await;
        delete_queues(&name, &["count"]).await;
    });
}

#[test]
fn an_overlong_procedure_name_is_refused_not_fatal() {
    runtime().block_on(async {
        let client = client().await;
        let call = Call::new("x".repeat(300), Encoding::Json, b"{}".to_vec());
        assert!(matches!(
            client.call_raw(call).await,
            Err(RpcError::UnknownProcedure(_))
        ));
        let call = Call::new(
            format!("{}.add", unique("nobody")),
            Encoding::Json,
            b"{}".to_vec(),
        );
        assert!(matches!(
            client.call_raw(call).await,
            Err(RpcError::UnknownProcedure(_))
        ));
    });
}

#[test]
fn amqps_urls_speak_tls() {
    runtime().block_on(async {
        // The local broker speaks plain AMQP on 5672: a TLS client fails its handshake there,
        // which shows that amqps:// is understood and TLS is built in (not refused outright).
        let config = transport_amqp::AmqpConfig::new("amqps://guest:secret@127.0.0.1:5672/%2f");
        let err = tokio::time::timeout(Duration::from_secs(20), AmqpTransport::connect(config))
            .await
            .expect("the handshake failed in time")
            .expect_err("no TLS on the plain port");
        let message = err.to_string();
        println!("{message}");
        assert!(
            message.contains("amqps://guest:***@127.0.0.1:5672"),
            "{message}"
        );
        assert!(!message.contains("secret"), "{message}");
    });
}

#[test]
fn shutdown_answers_what_it_holds_and_leaves_the_rest_queued() {
    runtime().block_on(async {
        let name = unique("draining");
        let mut registry = Registry::new();
        registry.register_as(name.clone(), First);
        let server = serve(registry).await;
        let client = client().await.with_timeout(Duration::from_secs(20));
        let procedure = format!("{name}.work");
        let call = |ms: u64| {
            let client = client.clone();
            let procedure = procedure.clone();
            tokio::spawn(async move { client.call::<_, String>(&procedure, &(ms,)).await })
        };
        let held = call(800);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let waiting = call(10); // prefetch 1: stays in the queue
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.shutdown().await;
        assert_eq!(
            held.await.expect("task"),
            Ok("first".into()),
            "answered before stopping"
        );
        assert!(
            !waiting.is_finished(),
            "the queued call was not taken by a stopping consumer"
        );

        let mut registry = Registry::new();
        registry.register_as(name.clone(), Second);
        let next = serve(registry).await;
        assert_eq!(waiting.await.expect("task"), Ok("second".into()));
        next.shutdown().await;
        delete_queues(&name, &["work"]).await;
    });
}
