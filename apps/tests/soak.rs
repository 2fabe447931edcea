//! The soak run: two consumer processes per transport, 64 calls in flight at a steady rate, and
//! one consumer restarted every 10 s (by turns: SIGINT, which lets it finish what it holds, and
//! SIGKILL, which does not). Reports calls done, errors by kind, latency and the consumers'
//! peak memory; fails if a call was lost (no outcome) or answered wrongly.
//!
//! Not in the default test run (it takes minutes): run it with `scripts/soak.sh`, or
//! `cargo test --release -p rpc-apps --test soak -- --ignored --nocapture`. Its size comes from
//! the environment: `RPC_SOAK_SECS` (default 60) per transport, `RPC_SOAK_CALLS` (a cap on the
//! calls per transport, default none), `RPC_SOAK_RESTART_SECS` (default 10) and
//! `RPC_SOAK_TRANSPORTS` (default `tcp,amqp`).

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use num_bigint::BigUint;
use rpc_apps::cli::{TransportKind, TransportOptions};
use rpc_apps::connect::client_transport;
use rpc_apps::producer::{millis, quantile};
use rpc_apps::security::TransportSecurity;
use rpc_apps::workloads::FibonacciGeneratorClient;
use rpc_core::Client;

use support::Consumer;

/// Calls in flight at once.
const IN_FLIGHT: usize = 64;

/// Arguments are drawn from `0..=LARGEST_N`, answers checked against a table made by addition.
const LARGEST_N: u64 = 30_000;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a valid value")),
        Err(_) => default,
    }
}

/// F(0..=LARGEST_N), by the definition: independent of the consumers' fast doubling.
fn fibonacci_table() -> Vec<BigUint> {
    let mut table = vec![BigUint::ZERO, BigUint::from(1u8)];
    while table.len() <= LARGEST_N as usize {
        let next = &table[table.len() - 1] + &table[table.len() - 2];
        table.push(next);
    }
    table
}

/// A consumer that logs no line per call: hundreds of thousands of them would fill the test's
/// memory, which keeps every line a consumer logs.
fn quiet(args: &[&str], port: u16) -> Consumer {
    Consumer::start_logging(args, port, "info,rpc_core::registry=warn")
}

/// What one transport's soak saw.
#[derive(Default)]
struct Outcome {
    ok: u64,
    wrong: u64,
    errors: BTreeMap<String, u64>,
    latencies: Vec<Duration>,
}

/// Restarts the two consumers by turns every `every` until `stop`; returns the restarts made
/// and the largest peak RSS (bytes) any consumer instance reached.
fn restart_by_turns(
    args: &'static [&'static str],
    mut consumers: [Consumer; 2],
    every: Duration,
    stop: Arc<AtomicBool>,
) -> (Vec<String>, u64) {
    let mut restarts = Vec::new();
    let mut peak = 0;
    let mut turn = 0usize;
    let mut next = Instant::now() + every;
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        next += every;
        let which = turn % 2;
        let signal = if turn % 4 < 2 { "INT" } else { "KILL" };
        turn += 1;
        let consumer = &mut consumers[which];
        peak = peak.max(consumer.memory("VmHWM").unwrap_or(0));
        consumer.signal(signal);
        consumer.wait_exit(Duration::from_secs(60));
        let port = consumer.port;
        consumers[which] = quiet(args, port);
        restarts.push(format!("consumer {which} by SIG{signal}"));
    }
    for consumer in &consumers {
        peak = peak.max(consumer.memory("VmHWM").unwrap_or(0));
    }
    (restarts, peak)
}

fn soak(transport: TransportKind, seconds: u64, calls: u64, every: Duration) {
    let args: &'static [&'static str] = match transport {
        TransportKind::Tcp => &["--transport", "tcp", "--no-model"],
        TransportKind::Amqp => &["--transport", "amqp", "--no-model"],
    };
    let consumers = [quiet(args, 0), quiet(args, 0)];
    let ports: Vec<String> = match transport {
        TransportKind::Tcp => consumers.iter().map(|c| c.port.to_string()).collect(),
        TransportKind::Amqp => Vec::new(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let restarter = {
        let stop = stop.clone();
        std::thread::spawn(move || restart_by_turns(args, consumers, every, stop))
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let table = Arc::new(fibonacci_table());
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let sent_calls = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    runtime.block_on(async {
        let options = TransportOptions::new(transport);
        let client = client_transport(&options, &ports, &TransportSecurity::default())
            .await
            .expect("a client transport");
        let fibonacci = FibonacciGeneratorClient::from_client(Client::from_arc(client));
        // 64 callers, each making its next call as soon as its last one is answered, until
        // the time or the number of calls is up: the consumers are saturated all along.
        let deadline = started + Duration::from_secs(seconds);
        let next = Arc::new(AtomicU64::new(0));
        let callers: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                let (fibonacci, next, sent_calls, table, outcome) = (
                    fibonacci.clone(),
                    next.clone(),
                    sent_calls.clone(),
                    table.clone(),
                    outcome.clone(),
                );
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= calls {
                            break;
                        }
                        let n = (i * 7_919) % (LARGEST_N + 1);
                        sent_calls.fetch_add(1, Ordering::Relaxed);
                        let sent = Instant::now();
                        let answer = fibonacci.calculate(n as i64).await;
                        let latency = sent.elapsed();
                        let mut outcome = outcome.lock().expect("outcome lock");
                        outcome.latencies.push(latency);
                        match answer {
                            Ok(number) if number.0 == table[n as usize] => outcome.ok += 1,
                            Ok(_) => outcome.wrong += 1,
                            Err(err) => {
                                *outcome.errors.entry(err.kind().to_string()).or_default() += 1
                            }
                        }
                    }
                })
            })
            .collect();
        // A call still unanswered a minute after the run (twice its 30 s timeout) is lost.
        let grace = tokio::time::Instant::from_std(deadline) + Duration::from_secs(60);
        for caller in callers {
            if let Ok(joined) = tokio::time::timeout_at(grace, caller).await {
                joined.expect("a caller task");
            }
        }
    });
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (restarts, peak) = restarter.join().expect("the restarter thread");

    let outcome = outcome.lock().expect("outcome lock");
    let failed: u64 = outcome.errors.values().sum();
    let issued = sent_calls.load(Ordering::Relaxed);
    let lost = issued - outcome.ok - outcome.wrong - failed;
    println!(
        "soak {transport:?}: {issued} calls in {:.1} s ({:.0} calls/s), {} in flight; \
         ok {}, wrong {}, failed {failed} {:?}, lost {lost}; \
         latency p50 {}, p99 {}, max {}; {} restarts ({}); consumer peak RSS {:.1} MiB",
        elapsed.as_secs_f64(),
        issued as f64 / elapsed.as_secs_f64(),
        IN_FLIGHT,
        outcome.ok,
        outcome.wrong,
        outcome.errors,
        millis(quantile(&outcome.latencies, 0.5)),
        millis(quantile(&outcome.latencies, 0.99)),
        millis(outcome.latencies.iter().max().copied()),
        restarts.len(),
        restarts.join(", "),
        peak as f64 / (1 << 20) as f64,
    );
    assert_eq!(lost, 0, "a call without an outcome");
    assert_eq!(outcome.wrong, 0, "wrong answers");
    assert!(!restarts.is_empty(), "no consumer was restarted");
}

#[test]
#[ignore = "the soak run takes minutes: scripts/soak.sh"]
fn soak_both_transports_restarting_a_consumer_every_ten_seconds() {
    let seconds = env_or("RPC_SOAK_SECS", 60u64);
    let calls = env_or("RPC_SOAK_CALLS", u64::MAX);
    let every = Duration::from_secs(env_or("RPC_SOAK_RESTART_SECS", 10u64));
    let transports = env_or("RPC_SOAK_TRANSPORTS", "tcp,amqp".to_string());
    for name in transports.split(',') {
        let transport = match name.trim() {
            "tcp" => TransportKind::Tcp,
            "amqp" => TransportKind::Amqp,
            other => panic!("RPC_SOAK_TRANSPORTS: unknown transport {other:?}"),
        };
        soak(transport, seconds, calls, every);
    }
}
