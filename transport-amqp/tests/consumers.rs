//! Consumers on a real broker: two share a queue's load, one killed mid-task (a real child
//! process, SIGKILL) leaves its request to another, one stopping answers what it holds, one
//! losing its connection gives back what it had not started, and one whose queue is deleted
//! declares it again.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_core::{Registry, RpcError};
use test_support::rabbitmq::rabbitmqctl;
use transport_amqp::AmqpServer;

use support::child::{serve_as_child, ChildConsumer};
use support::{
    client, config, delete_queues, eventually, queue_counts, raw_channel, runtime, serve, unique,
    Counter, First, Second, Tally,
};

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
    serve_as_child(CHILD_VARIABLE, |registry, name| {
        registry.register_as(name, Doomed);
    });
}

#[test]
fn killed_consumer_leaves_its_request_to_another() {
    runtime().block_on(async {
        let name = unique("doomed");
        let mut child = ChildConsumer::start(CHILD_VARIABLE, &name);
        assert!(child.said("CONSUMING").await, "the child never consumed");

        let client = client().await.with_timeout(Duration::from_secs(30));
        let procedure = format!("{name}.work");
        let call =
            tokio::spawn(async move { client.call::<_, String>(&procedure, &(3_000u64,)).await });
        assert!(
            child.said("STARTED").await,
            "the child never started the call"
        );

        // The survivor subscribes while the child holds the request, then the child dies.
        let mut registry = Registry::new();
        registry.register_as(name.clone(), Second);
        let survivor = serve(registry).await;
        let killed = Instant::now();
        child.process.start_kill().expect("SIGKILL the child");
        let _ = child.process.wait().await;

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
        // Handed to the registry behind the running call, not started: withdrawn at shutdown.
        let waiting = call(10);
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
        // The answered request was acked before the channel closed (its ack not left in a
        // batch to be requeued): only the waiting one is back in the queue.
        let (_connection, channel) = raw_channel().await;
        assert_eq!(queue_counts(&channel, &procedure).await, (1, 0));

        let mut registry = Registry::new();
        registry.register_as(name.clone(), Second);
        let next = serve(registry).await;
        assert_eq!(waiting.await.expect("task"), Ok("second".into()));
        next.shutdown().await;
        delete_queues(&name, &["work"]).await;
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

/// The pid, as `rabbitmqctl close_connection` takes it, of the broker's one connection whose
/// client named itself `name`.
fn connection_named(name: &str) -> String {
    // The text form: its pids are what `close_connection` takes (the JSON form's are not).
    let listed = rabbitmqctl(&["list_connections", "pid", "client_properties", "-q"]);
    let ours: Vec<&str> = listed
        .lines()
        .filter(|line| line.contains(&format!("\"{name}\"")))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(ours.len(), 1, "one connection named {name}: {listed}");
    ours[0].to_string()
}

/// A call's answer, which must come within 30 s.
async fn answered<T>(call: tokio::task::JoinHandle<Result<T, RpcError>>) -> Result<T, RpcError> {
    tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("answered after the consumer reconnected")
        .expect("task")
}

#[test]
fn a_lost_connection_gives_back_the_requests_not_started() {
    runtime().block_on(async {
        let name = unique("withdrawn");
        let counter = format!("{name}_counter");
        // One worker: a long call runs on it, and the next one is handed over behind it.
        let mut registry = Registry::new();
        registry.register_as(name.clone(), Tally);
        registry.register_as(counter.clone(), Counter);
        let consumer_name = format!("{name}-consumer");
        let server = AmqpServer::start(
            config().with_connection_name(consumer_name.clone()),
            Arc::new(registry),
        )
        .await
        .expect("a consumer on the broker (scripts/start_rabbitmq.sh)");
        let connection = connection_named(&consumer_name);
        let client = client().await.with_timeout(Duration::from_secs(30));
        let long = tokio::spawn({
            let (client, procedure) = (client.clone(), format!("{name}.sleep"));
            async move { client.call::<_, ()>(&procedure, &(2_000u64,)).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let queued = tokio::spawn({
            let (client, procedure) = (client.clone(), format!("{counter}.count"));
            let tag = name.clone();
            async move { client.call::<_, u64>(&procedure, &(tag,)).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Well before the long call ends (`rabbitmqctl` itself takes a few hundred ms).
        rabbitmqctl(&["close_connection", &connection, "closed by the test"]);

        assert_eq!(answered(long).await, Ok(()), "the running call, run again");
        assert_eq!(
            answered(queued).await,
            Ok(1),
            "the call not started was given back, and ran once, after the reconnection"
        );
        server.shutdown().await;
        delete_queues(&name, &["task", "sleep"]).await;
        delete_queues(&counter, &["count"]).await;
    });
}
