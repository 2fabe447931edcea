//! A consumer restarted while the producer runs, over both transports: first stopped with
//! SIGINT (it finishes what it holds), then killed with SIGKILL (what it held runs again), each
//! time started again. The producer is the only client: every task it generated is answered
//! exactly once in its summary, none fails.

mod support;

use std::time::Duration;

use support::{assert_each_answered_once, run, Consumer};

/// Tasks in the run: enough to span both restarts at the interval below. With n up to 10^6
/// (up to 0.12 s each) the one worker is busy most of the time, so the signals land mid-task.
const TASKS: u64 = 80;

/// Runs the producer against one consumer started with `args` while a second thread restarts
/// that consumer twice (SIGINT, then SIGKILL), and checks every task was answered once by the
/// producer, and that each restarted consumer served tasks.
fn restart_during_a_run(args: &'static [&'static str], seed: &str) {
    let first = Consumer::start(args);
    let port = first.port;
    let restarter = std::thread::spawn(move || {
        let mut consumer = first;
        let mut served = Vec::new();
        for signal in ["INT", "KILL"] {
            consumer.wait_for("running", Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(300));
            consumer.signal(signal);
            let status = consumer.wait_exit(Duration::from_secs(30));
            assert_eq!(status.success(), signal == "INT", "exit after SIG{signal}");
            served.push(consumer.log());
            consumer = Consumer::start_on(args, port);
        }
        // The last instance serves on until the producer is done.
        (served, consumer)
    });
    let mut producer = vec!["--transport".to_string(), args[1].to_string()];
    if port != 0 {
        producer.push(port.to_string());
    }
    for arg in [
        "--count",
        &TASKS.to_string(),
        "--interval",
        "0.05",
        "--mix",
        "fibonacci",
        "--fibonacci-max",
        "1000000",
        "--seed",
        seed,
    ] {
        producer.push(arg.to_string());
    }
    let output = run(env!("CARGO_BIN_EXE_producer"), &producer);
    let (mut logs, last) = restarter.join().expect("the restarter thread");
    logs.push(last.log());
    assert_each_answered_once(&output, TASKS);
    for (instance, log) in logs.iter().enumerate() {
        assert!(
            log.iter().any(|line| line.contains("running")),
            "consumer instance {instance} ran no task: {log:#?}"
        );
    }
}

#[test]
fn a_tcp_consumer_restarted_twice_loses_no_task() {
    restart_during_a_run(&["--transport", "tcp", "--no-model"], "21");
}

#[test]
fn an_amqp_consumer_restarted_twice_loses_no_task() {
    restart_during_a_run(&["--transport", "amqp", "--no-model"], "22");
}
