//! The broker restarted (`rabbitmqctl stop_app`, 2 s, `start_app`) under two running AMQP
//! consumers and a producer running 300 tasks at 100 per second, all real processes with their
//! default settings (quorum topology). Every task the producer accepted is answered exactly
//! once in its log, none failed: the calls in flight ride out the broker's absence.
//!
//! A test target of its own with a single test: cargo runs test binaries one after another,
//! so stopping the broker here disturbs no other test.

mod support;

use std::time::{Duration, Instant};

use support::{Consumer, Producer};
use test_support::BrokerStopped;

#[test]
fn every_task_is_answered_across_a_broker_restart() {
    let consumers = [
        Consumer::start(&["--transport", "amqp", "--no-model", "--workers", "2"]),
        Consumer::start(&["--transport", "amqp", "--no-model", "--workers", "2"]),
    ];
    let args: Vec<String> = [
        "--transport",
        "amqp",
        "--interval",
        "0.01",
        "--count",
        "300",
        "--mix",
        "fibonacci",
        "--fibonacci-max",
        "100000",
        "--timeout",
        "30",
        "--seed",
        "31",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mut producer = Producer::spawn(&args);
    producer.wait_for_results(60, Duration::from_secs(60));

    let restart = BrokerStopped::stop_app();
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    drop(restart);
    let away = stopped.elapsed();
    let back = Instant::now();
    producer.drain();
    producer.wait_for_results(1, Duration::from_secs(60));
    let answering_again = back.elapsed();
    let run = producer.finish();
    let finished = back.elapsed();
    drop(consumers);

    let added = run.ids("task added: #");
    let answered = run.ids("result #");
    let failed = run.ids("failed #");
    assert_eq!(added.len(), 300, "the producer accepted every task");
    assert_eq!(failed, Vec::<u64>::new(), "no task failed");
    assert_eq!(answered, added, "each accepted task answered once");
    let summary = "summary: 300 tasks, 300 ok, 0 failed";
    assert!(run.stdout.contains(summary), "{}", run.stdout);
    assert!(run.status.success(), "producer: {}", run.status);
    println!(
        "broker away {away:.1?}; answering again {answering_again:.1?} after start_app, all \
         300 answered {finished:.1?} after it: 300 sent, {} answered, {} failed, 0 lost",
        answered.len(),
        failed.len()
    );
}
