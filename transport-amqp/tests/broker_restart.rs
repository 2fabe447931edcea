//! A broker restart (`rabbitmqctl stop_app`, 2 s, `start_app`) under load, in each topology:
//! two consumers, a client sending 300 tasks at 100 per second, one long call in flight. Every
//! task is answered (none failed, none lost), whether its request was waiting in a queue, being
//! run, or published while the broker was away; tasks run twice are counted. Afterwards both
//! halves are connected again, under the same reply queue name.
//!
//! A test target of its own with a single test: cargo runs test binaries one after another,
//! so stopping the broker here disturbs no other test.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc_core::{Client, Registry, RpcError};
use transport_amqp::{AmqpServer, AmqpTransport, Topology};

use support::{config, delete_queues, runtime, unique};

/// How many times each task ran, by tag, across both consumers.
static RUNS: Mutex<Option<HashMap<u64, u32>>> = Mutex::new(None);

/// The procedures served across the restart.
struct Steady;

#[rpc_core::handler]
impl Steady {
    /// Counts a run of task `tag`, works 20 ms, returns the tag.
    pub fn task(tag: u64) -> u64 {
        *RUNS
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

const TASKS: u64 = 300;
const RATE_INTERVAL: Duration = Duration::from_millis(10);

/// What one run under a restart gave.
struct Figures {
    sent: u64,
    answered: u64,
    failed: Vec<(u64, RpcError)>,
    run_twice: usize,
    first_answer_after_start: Duration,
    all_answered_after_start: Duration,
}

fn restart_under_load(topology: Topology) -> Figures {
    runtime().block_on(async {
        let config = config().with_topology(topology);
        let name = unique("steady");
        let tag_base = rand_base();
        let mut servers = Vec::new();
        for _ in 0..2 {
            let mut registry = Registry::new().with_workers(2);
            registry.register_as(name.clone(), Steady);
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
        let task = format!("{name}.task");

        let mut long = None;
        let answers: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let mut calls = Vec::new();
        let mut restart = None;
        let mut started_at = None;
        let began = Instant::now();
        for i in 0..TASKS {
            if i == 95 {
                // Running on a consumer when the broker stops.
                long = Some(tokio::spawn({
                    let client = client.clone();
                    let sleep = format!("{name}.sleep");
                    async move { client.call::<_, ()>(&sleep, &(1_000u64,)).await }
                }));
            }
            if i == 100 {
                restart = Some(Restart);
                rabbitmqctl("stop_app");
                println!("stop_app after {:.1?}", began.elapsed());
            }
            if i == 150 {
                tokio::time::sleep(Duration::from_secs(2)).await;
                drop(restart.take()); // start_app
                started_at = Some(Instant::now());
                println!("start_app after {:.1?}", began.elapsed());
            }
            let client = client.clone();
            let task = task.clone();
            let answers = answers.clone();
            let tag = tag_base + i;
            calls.push(tokio::spawn(async move {
                let result = client.call::<_, u64>(&task, &(tag,)).await;
                if result.is_ok() {
                    answers.lock().expect("answers").push(Instant::now());
                }
                (tag, result)
            }));
            tokio::time::sleep(RATE_INTERVAL).await;
        }
        let mut answered = 0;
        let mut failed = Vec::new();
        for call in calls {
            let (tag, result) = call.await.expect("a call's task");
            match result {
                Ok(back) if back == tag => answered += 1,
                Ok(other) => panic!("task {tag} answered as {other}"),
                Err(err) => failed.push((tag, err)),
            }
        }
        let long = long
            .expect("the long call")
            .await
            .expect("the long call's task");
        assert_eq!(long, Ok(()), "the call in flight across the restart");
        let started_at = started_at.expect("start_app ran");
        let answers = answers.lock().expect("answers").clone();
        let after: Vec<Duration> = answers
            .iter()
            .filter(|at| **at > started_at)
            .map(|at| at.duration_since(started_at))
            .collect();
        let runs = RUNS.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let run_twice = (tag_base..tag_base + TASKS)
            .filter(|tag| runs.as_ref().and_then(|r| r.get(tag)).copied().unwrap_or(0) > 1)
            .count();
        assert_eq!(
            transport.reply_queue(),
            reply_queue,
            "the same reply queue name after reconnecting"
        );
        for server in servers {
            server.shutdown().await;
        }
        delete_queues(&name, &["task", "sleep"]).await;
        Figures {
            sent: TASKS,
            answered,
            failed,
            run_twice,
            first_answer_after_start: after.iter().min().copied().unwrap_or_default(),
            all_answered_after_start: after.iter().max().copied().unwrap_or_default(),
        }
    })
}

/// A tag range of its own for each topology's run.
fn rand_base() -> u64 {
    static NEXT: Mutex<u64> = Mutex::new(0);
    let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
    *next += 1_000_000;
    *next
}

#[test]
fn calls_ride_out_a_broker_restart_in_both_topologies() {
    for topology in [Topology::Quorum, Topology::Classic] {
        let figures = restart_under_load(topology);
        println!(
            "{topology}: {} tasks sent, {} answered, {} failed, {} run twice; first answer \
             {:.1?} after start_app, all answered {:.1?} after it",
            figures.sent,
            figures.answered,
            figures.failed.len(),
            figures.run_twice,
            figures.first_answer_after_start,
            figures.all_answered_after_start
        );
        assert!(
            figures.failed.is_empty(),
            "{topology}: {} of {} failed: {:?}",
            figures.failed.len(),
            figures.sent,
            figures.failed
        );
        assert_eq!(figures.answered, figures.sent, "{topology}");
    }
}
