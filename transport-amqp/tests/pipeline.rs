//! The adaptive prefetch pipeline on a real broker: cheap calls make a consumer's pipeline grow
//! (the broker's own `list_consumers` says so), while heavy tasks on the same consumer keep the
//! small default, so that two consumers share them and neither hoards what it cannot start;
//! and once grown, a cheap procedure's pipeline stays as long as the calls keep coming.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use rpc_core::{Client, Registry};
use test_support::rabbitmq::rabbitmqctl_json;
use transport_amqp::{AmqpServer, DEFAULT_MAX_PREFETCH_PIPELINE, DEFAULT_PREFETCH_PIPELINE};

use support::{client, delete_queues, runtime, serve, unique};

/// A consumer that says who it is.
struct Named(&'static str);

#[rpc_core::handler]
impl Named {
    /// Returns `n`: as cheap as a call gets.
    pub fn cheap(&self, n: u64) -> u64 {
        n
    }

    /// Works `ms` milliseconds, says who did.
    pub fn heavy(&self, ms: u64) -> String {
        std::thread::sleep(Duration::from_millis(ms));
        self.0.to_string()
    }
}

/// Each consumer of `queue` as the broker lists it: its tag and its prefetch.
fn consumers(queue: &str) -> Vec<(String, u64)> {
    rabbitmqctl_json(&[
        "list_consumers",
        "queue_name",
        "consumer_tag",
        "prefetch_count",
    ])
    .into_iter()
    .filter(|c| c["queue_name"] == queue)
    .filter_map(|c| {
        Some((
            c["consumer_tag"].as_str()?.to_string(),
            c["prefetch_count"].as_u64()?,
        ))
    })
    .collect()
}

/// The prefetch of each consumer of `queue`, as the broker says.
fn prefetches(queue: &str) -> Vec<u64> {
    consumers(queue)
        .into_iter()
        .map(|(_, prefetch)| prefetch)
        .collect()
}

/// Cheap calls of `procedure`, 64 in flight, until every consumer of its queue has a prefetch
/// that `grown` accepts or 30 s have passed; then the consumers. A pipeline grows by steps,
/// each at least twice the last, once the round trips measured at the last size settle.
async fn call_until(
    client: &Client,
    procedure: &str,
    grown: impl Fn(u64) -> bool,
) -> Vec<(String, u64)> {
    let started = std::time::Instant::now();
    loop {
        cheap_calls(client, procedure, 2_048).await;
        let consumers = consumers(procedure);
        if consumers.iter().all(|c| grown(c.1)) || started.elapsed().as_secs() > 30 {
            return consumers;
        }
    }
}

/// A consumer of `name`'s procedures with the apps' defaults (one worker, the default
/// pipeline) that answers `heavy` with `who`.
async fn consumer(name: &str, who: &'static str) -> AmqpServer {
    let mut registry = Registry::new();
    registry.register_as(name.to_string(), Named(who));
    serve(registry).await
}

/// `calls` cheap calls of `procedure`, 64 at a time.
async fn cheap_calls(client: &Client, procedure: &str, calls: u64) {
    let tasks = (0..64).map(|task| {
        let client = client.clone();
        let procedure = procedure.to_string();
        tokio::spawn(async move {
            for n in 0..calls / 64 {
                let got: u64 = client.call(&procedure, &(n + task,)).await.expect("cheap");
                assert_eq!(got, n + task);
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.expect("task");
    }
}

#[test]
fn cheap_calls_pipeline_deeply_and_heavy_tasks_stay_shared() {
    runtime().block_on(async {
        let name = unique("pipeline");
        let cheap = format!("{name}.cheap");
        let heavy = format!("{name}.heavy");
        let first = consumer(&name, "first").await;
        let client = client().await.with_timeout(Duration::from_secs(30));

        // Cheap calls, 64 in flight: a call runs in microseconds against a round trip of a
        // millisecond or so, so the first consumer's cheap pipeline grows.
        let default = 1 + u64::from(DEFAULT_PREFETCH_PIPELINE);
        let grown: Vec<u64> = call_until(&client, &cheap, |p| p >= 3 * default)
            .await
            .into_iter()
            .map(|(_, prefetch)| prefetch)
            .collect();
        assert_eq!(grown.len(), 1, "the replaced consumers are gone: {grown:?}");
        assert!(
            grown[0] >= 3 * default,
            "the cheap queue's prefetch grew: {grown:?}"
        );
        assert_eq!(prefetches(&heavy), vec![default], "untouched");

        // A second consumer, and heavy tasks of 100 ms, 24 at once, while cheap calls keep
        // the first consumer's cheap pipeline deep.
        let second = consumer(&name, "second").await;
        let background = {
            let client = client.clone();
            let cheap = cheap.clone();
            tokio::spawn(async move { cheap_calls(&client, &cheap, 2_048).await })
        };
        let calls = (0..24).map(|_| {
            let client = client.clone();
            let heavy = heavy.clone();
            tokio::spawn(async move { client.call::<_, String>(&heavy, &(100u64,)).await })
        });
        let mut by_consumer: HashMap<String, usize> = HashMap::new();
        for call in futures::future::join_all(calls).await {
            let who = call.expect("task").expect("heavy call");
            *by_consumer.entry(who).or_default() += 1;
        }
        background.await.expect("cheap calls");
        // 24 tasks of 100 ms, one worker each: 12 each when fair; a consumer that held the
        // heavy tasks it could not start (a prefetch of dozens) would leave the other 3 or so.
        for who in ["first", "second"] {
            assert!(
                by_consumer.get(who).copied().unwrap_or(0) >= 8,
                "{who} took too few: {by_consumer:?}"
            );
        }
        // Heavy tasks run far longer than a round trip: their pipeline is the default.
        assert_eq!(prefetches(&heavy), vec![default, default]);

        first.shutdown().await;
        second.shutdown().await;
        delete_queues(&name, &["cheap", "heavy"]).await;
    });
}

#[test]
fn a_grown_pipeline_stays_while_cheap_calls_keep_coming() {
    runtime().block_on(async {
        let name = unique("steady");
        let cheap = format!("{name}.cheap");
        let only = consumer(&name, "only").await;
        let client = client().await.with_timeout(Duration::from_secs(30));
        // Calls of microseconds against a round trip of about a millisecond: Little's law
        // asks for more than the largest pipeline, so it grows to that and no further.
        let deepest = 1 + u64::from(DEFAULT_MAX_PREFETCH_PIPELINE);
        let grown = call_until(&client, &cheap, |p| p == deepest).await;
        assert!(
            grown.len() == 1 && grown[0].1 == deepest,
            "the cheap queue's prefetch grew to the largest: {grown:?}"
        );

        // The same load for 5 s more. Each change of pipeline is a new consumer on the queue
        // (a new tag): the run time that sizes it is the call's own, not its wait for a
        // busy consumer's runtime, so the load it brings does not shrink it back.
        let steady = std::time::Instant::now();
        while steady.elapsed() < Duration::from_secs(5) {
            cheap_calls(&client, &cheap, 2_048).await;
        }
        assert_eq!(
            consumers(&cheap),
            grown,
            "the same consumer, the same prefetch"
        );

        only.shutdown().await;
        delete_queues(&name, &["cheap"]).await;
    });
}
