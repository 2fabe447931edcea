//! A broker restart (`rabbitmqctl stop_app`, 2 s, `start_app`) under load, in each topology:
//! two consumers, a client sending 300 tasks at 100 per second, one long call in flight. Every
//! task is answered (none failed, none lost), whether its request was waiting in a queue, being
//! run, or published while the broker was away; tasks run twice are counted. Afterwards both
//! halves are connected again, under the same reply queue name.
//!
//! A test target of its own with a single test: cargo runs test binaries one after another,
//! so stopping the broker here disturbs no other test.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_core::{Client, Registry};
use test_support::BrokerStopped;
use transport_amqp::{AmqpServer, AmqpTransport, Topology};

use support::{config, delete_queues, run_twice, runtime, unique, Load, Tally};

const TASKS: u64 = 300;
const INTERVAL: Duration = Duration::from_millis(10);

fn restart_under_load(topology: Topology, first_tag: u64) {
    runtime().block_on(async {
        let config = config().with_topology(topology);
        let name = unique("steady");
        let mut servers = Vec::new();
        for _ in 0..2 {
            let mut registry = Registry::new().with_workers(2);
            registry.register_as(name.clone(), Tally);
            servers.push(
                AmqpServer::start(config.clone(), Arc::new(registry))
                    .await
                    .expect("a consumer on the broker (scripts/start_rabbitmq.sh)"),
            );
        }
        let transport = AmqpTransport::connect(config.clone())
            .await
            .expect("a client");
        let reply_queue = transport.reply_queue();
        let client = Client::new(transport.clone()).with_timeout(Duration::from_secs(30));
        let load = Load::start(
            client.clone(),
            format!("{name}.task"),
            first_tag,
            TASKS,
            INTERVAL,
        );
        load.wait_answers(90).await;
        let rate = load.rate_now(Duration::from_millis(500));
        // Running on a consumer when the broker stops.
        let long = tokio::spawn({
            let sleep = format!("{name}.sleep");
            async move { client.call::<_, ()>(&sleep, &(1_000u64,)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let restart = BrokerStopped::stop_app();
        let stopped = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(restart); // start_app
        let started = Instant::now();
        let tags = load.tags.clone();
        let outcome = load.finish().await;
        assert_eq!(
            long.await.expect("the long call's task"),
            Ok(()),
            "{topology}: the call running across the restart"
        );
        println!(
            "{topology}: {} tasks sent, {} answered, {} failed, {} run twice; broker away \
             {:.1?}, longest pause in answers {:.1?}; first answer {:.1?} after start_app, \
             back to {rate:.0}/s after {:.1?}, all answered {:.1?} after it",
            outcome.sent,
            outcome.answered,
            outcome.failed.len(),
            run_twice(tags),
            started.duration_since(stopped),
            outcome.longest_pause_after(stopped),
            outcome.first_answer_after(started).unwrap_or_default(),
            outcome.back_to_rate(started, rate).unwrap_or_default(),
            outcome.last_answer_after(started).unwrap_or_default(),
        );
        assert!(
            outcome.failed.is_empty(),
            "{topology}: {} of {} failed: {:?}",
            outcome.failed.len(),
            outcome.sent,
            outcome.failed
        );
        assert_eq!(outcome.answered, outcome.sent, "{topology}");
        assert_eq!(
            transport.reply_queue(),
            reply_queue,
            "the same reply queue name after reconnecting"
        );
        for server in servers {
            server.shutdown().await;
        }
        delete_queues(&name, &["task", "sleep"]).await;
    });
}

#[test]
fn calls_ride_out_a_broker_restart_in_both_topologies() {
    restart_under_load(Topology::Quorum, 1_000_000);
    restart_under_load(Topology::Classic, 2_000_000);
}
