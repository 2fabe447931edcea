//! A broker restart (`rabbitmqctl stop_app` / `start_app`) survived by both halves: the call in
//! flight fails clearly instead of hanging, calls while the broker is away fail within their
//! timeout, and afterwards both reconnect by themselves, the consumer re-declaring its queue
//! and the client a new reply queue.
//!
//! A test target of its own with a single test: cargo runs test binaries one after another,
//! so stopping the broker here disturbs no other test.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_core::{Client, Registry, RpcError};
use transport_amqp::{AmqpServer, AmqpTransport};

use support::{config, delete_queues, unique};

/// The procedures served across the restart.
struct Steady;

#[rpc_core::handler]
impl Steady {
    /// Adds two numbers.
    pub fn add(a: i64, b: i64) -> i64 {
        a + b
    }

    /// Sleeps `ms` milliseconds.
    pub fn sleep(ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

fn rabbitmqctl(command: &str) {
    let status = Command::new("rabbitmqctl")
        .arg(command)
        .status()
        .or_else(|_| Command::new("/usr/sbin/rabbitmqctl").arg(command).status())
        .unwrap_or_else(|e| panic!("rabbitmqctl {command}: {e}"));
    assert!(status.success(), "rabbitmqctl {command} failed: {status}");
}

/// Starts the broker's application again however the test ends.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        rabbitmqctl("start_app");
    }
}

#[test]
fn both_halves_survive_a_broker_restart() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let name = unique("steady");
        let mut registry = Registry::new().with_workers(2);
        registry.register_as(name.clone(), Steady);
        let server = AmqpServer::start(config(), Arc::new(registry))
            .await
            .expect("a consumer on the broker (scripts/start_rabbitmq.sh)");
        let transport = AmqpTransport::connect(config()).await.expect("a client");
        let reply_queue = transport.reply_queue();
        let client = Client::new(transport.clone()).with_timeout(Duration::from_secs(30));
        let add = format!("{name}.add");
        assert_eq!(client.call::<_, i64>(&add, &(2i64, 3i64)).await, Ok(5));

        let in_flight = tokio::spawn({
            let client = client.clone();
            let sleep = format!("{name}.sleep");
            async move { client.call::<_, ()>(&sleep, &(3_000u64,)).await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;

        let restart = Restart;
        rabbitmqctl("stop_app");
        let stopped = Instant::now();
        let lost = tokio::time::timeout(Duration::from_secs(10), in_flight)
            .await
            .expect("the call in flight did not hang")
            .expect("task");
        assert!(matches!(lost, Err(RpcError::Io(_))), "{lost:?}");

        let short = client.clone().with_timeout(Duration::from_secs(1));
        let started = Instant::now();
        let down = short.call::<_, i64>(&add, &(1i64, 1i64)).await;
        assert!(
            matches!(down, Err(RpcError::Io(_) | RpcError::DeadlineExceeded)),
            "{down:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        println!("broker down for {:?}", stopped.elapsed());

        drop(restart); // start_app
        let back = Instant::now();
        let mut last = None;
        while back.elapsed() < Duration::from_secs(60) {
            match short.call::<_, i64>(&add, &(20i64, 22i64)).await {
                Ok(sum) => {
                    last = Some(Ok(sum));
                    break;
                }
                Err(err) => last = Some(Err(err)),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(last, Some(Ok(42)), "no answer after the restart");
        println!("answering again {:?} after start_app", back.elapsed());
        assert_ne!(transport.reply_queue(), reply_queue, "a new reply queue");
        // The consumer's queue was declared again: a call nobody served would be returned.
        assert_eq!(client.call::<_, i64>(&add, &(1i64, 2i64)).await, Ok(3));
        server.shutdown().await;
        delete_queues(&name, &["add", "sleep"]).await;
    });
}
