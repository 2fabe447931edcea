//! The real binaries as processes: full runs over TCP and AMQP, a consumer killed with SIGKILL
//! during a run, and SIGINT to a consumer mid-task.

mod support;

use std::time::Duration;

use support::{assert_each_answered_once, run, summary, Consumer, Producer};

fn producer(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// Two TCP consumers and a producer, both workloads: 50 tasks, each answered once, both
/// consumers used.
#[test]
fn two_tcp_consumers_answer_every_task_once() {
    let a = Consumer::start(&["--transport", "tcp"]);
    let b = Consumer::start(&["--transport", "tcp"]);
    let (pa, pb) = (a.port.to_string(), b.port.to_string());
    let output = run(
        env!("CARGO_BIN_EXE_producer"),
        &producer(&[
            "--transport",
            "tcp",
            &pa,
            &pb,
            "--count",
            "50",
            "--interval",
            "0",
            "--seed",
            "7",
        ]),
    );
    assert_each_answered_once(&output, 50);
    let summary = summary(&output);
    for port in [&pa, &pb] {
        assert!(
            summary.contains(&format!("127.0.0.1:{port}")),
            "consumer {port} unused: {summary}"
        );
    }
}

/// A consumer and a producer meeting at the broker: 50 tasks, each answered once.
#[test]
fn amqp_run_answers_every_task_once() {
    let _consumer = Consumer::start(&["--transport", "amqp"]);
    let output = run(
        env!("CARGO_BIN_EXE_producer"),
        &producer(&[
            "--transport",
            "amqp",
            "--count",
            "50",
            "--interval",
            "0",
            "--seed",
            "8",
        ]),
    );
    assert_each_answered_once(&output, 50);
}

/// One of two consumers killed with SIGKILL while the producer runs: the other finishes every
/// task, and none fails.
#[test]
fn sigkill_of_a_consumer_loses_no_task() {
    let mut doomed = Consumer::start(&["--transport", "tcp", "--no-model"]);
    let survivor = Consumer::start(&["--transport", "tcp", "--no-model"]);
    let (pd, ps) = (doomed.port.to_string(), survivor.port.to_string());
    let killer = std::thread::spawn(move || {
        doomed.wait_for("running", Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(300));
        doomed.signal("KILL");
        doomed.wait_exit(Duration::from_secs(10))
    });
    let output = run(
        env!("CARGO_BIN_EXE_producer"),
        &producer(&[
            "--transport",
            "tcp",
            &pd,
            &ps,
            "--count",
            "60",
            "--interval",
            "0.03",
            "--mix",
            "fibonacci",
            "--seed",
            "9",
        ]),
    );
    let status = killer.join().expect("killer thread");
    assert!(!status.success(), "the consumer was killed, not stopped");
    assert_each_answered_once(&output, 60);
}

/// SIGINT to a consumer while it runs a long task: it finishes and answers that task first,
/// then exits cleanly.
#[test]
fn sigint_mid_task_still_delivers_the_result() {
    let mut consumer = Consumer::start(&["--transport", "tcp", "--no-model"]);
    let port = consumer.port.to_string();
    let caller = std::thread::spawn(move || {
        run(
            env!("CARGO_BIN_EXE_call"),
            &producer(&[
                "--transport",
                "tcp",
                &port,
                "fibonacci_generator.calculate",
                "3000000",
            ]),
        )
    });
    consumer.wait_for("running", Duration::from_secs(30));
    consumer.signal("INT");
    let output = caller.join().expect("caller thread");
    assert!(output.status.success(), "the call failed");
    let digits = String::from_utf8_lossy(&output.stdout).trim().len();
    assert_eq!(digits, 626_963, "F(3,000,000) has 626,963 digits");
    assert!(
        consumer.wait_exit(Duration::from_secs(30)).success(),
        "consumer exit status"
    );
}

/// Ctrl-C to the producer while calls are in flight and queued: it stops generating, still
/// calls every task it had accepted, and its summary counts each exactly once.
#[test]
fn producer_ctrl_c_answers_every_accepted_task() {
    let consumer = Consumer::start(&["--transport", "tcp", "--no-model"]);
    let mut producer = Producer::spawn(&producer(&[
        "--transport",
        "tcp",
        &consumer.port.to_string(),
        "--interval",
        "0.005",
        "--mix",
        "fibonacci",
        "--fibonacci-max",
        "2000000",
        "--queue",
        "4",
        "--concurrency",
        "4",
        "--seed",
        "11",
    ]));
    producer.wait_for_results(3, Duration::from_secs(60));
    producer.interrupt();
    let run = producer.finish();

    let added = run.ids("task added: #");
    let answered = run.ids("result #");
    assert!(
        run.lines.iter().any(|l| l.contains("shutting down")),
        "no shutdown logged"
    );
    assert!(!added.is_empty());
    assert_eq!(answered, added, "every accepted task answered exactly once");
    let n = added.len();
    assert!(
        run.stdout
            .contains(&format!("summary: {n} tasks, {n} ok, 0 failed")),
        "{}",
        run.stdout
    );
    assert!(run.status.success(), "producer exit status {}", run.status);
}
