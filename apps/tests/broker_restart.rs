//! The broker restarted (`rabbitmqctl stop_app` / `start_app`) under a running AMQP consumer and
//! producer, both real processes. Every task the producer accepted appears exactly once in its
//! log: answered, or failed with the error that says why (the broker was away). Afterwards
//! both processes reconnect by themselves and tasks are answered again.
//!
//! A test target of its own with a single test: cargo runs test binaries one after another,
//! so stopping the broker here disturbs no other test.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Consumer, Producer};

fn rabbitmqctl(command: &str) {
    let status = Command::new("rabbitmqctl")
        .arg(command)
        .status()
        .or_else(|_| Command::new("/usr/sbin/rabbitmqctl").arg(command).status())
        .unwrap_or_else(|e| panic!("rabbitmqctl {command}: {e}"));
    assert!(status.success(), "rabbitmqctl {command} failed: {status}");
}

/// Starts the broker's application again however the test ends.
struct StartAppOnDrop;

impl Drop for StartAppOnDrop {
    fn drop(&mut self) {
        rabbitmqctl("start_app");
    }
}

/// The error kinds a call may fail with while the broker is away: the connection dropped
/// (`transport I/O`), the call's time ran out, or the consumer's queue was not declared again
/// yet when the call was published (`unknown procedure`, returned by the broker).
const CLEAR_ERRORS: [&str; 3] = ["transport I/O", "deadline exceeded", "unknown procedure"];

#[test]
fn every_task_is_answered_once_or_failed_clearly_across_a_broker_restart() {
    let consumer = Consumer::start(&["--transport", "amqp", "--no-model"]);
    let args: Vec<String> = [
        "--transport",
        "amqp",
        "--interval",
        "0.05",
        "--mix",
        "fibonacci",
        "--fibonacci-max",
        "1000000",
        "--timeout",
        "10",
        "--seed",
        "31",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mut producer = Producer::spawn(&args);
    producer.wait_for_results(10, Duration::from_secs(60));

    let restart = StartAppOnDrop;
    rabbitmqctl("stop_app");
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    drop(restart);
    let away = stopped.elapsed();
    let back = Instant::now();
    producer.drain();
    // Both processes reconnected: tasks are answered again.
    producer.wait_for_results(10, Duration::from_secs(90));
    let answering_again = back.elapsed();
    producer.interrupt();
    let run = producer.finish();
    drop(consumer);

    let added = run.ids("task added: #");
    let answered = run.ids("result #");
    let failed = run.ids("failed #");
    let mut outcomes = [answered.clone(), failed.clone()].concat();
    outcomes.sort_unstable();
    assert_eq!(
        outcomes, added,
        "each accepted task answered or failed, once"
    );
    for line in run.lines.iter().filter(|l| l.contains("failed #")) {
        assert!(
            CLEAR_ERRORS.iter().any(|e| line.contains(e)),
            "not a clear error: {line}"
        );
    }
    let n = added.len();
    let summary = format!(
        "summary: {n} tasks, {} ok, {} failed",
        answered.len(),
        failed.len()
    );
    assert!(run.stdout.contains(&summary), "{}", run.stdout);
    println!(
        "broker away {away:.1?}, answering again {answering_again:.1?} after start_app; \
         {n} tasks: {} answered, {} failed clearly, 0 lost",
        answered.len(),
        failed.len()
    );
}
