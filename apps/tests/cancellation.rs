//! Cancellation reaching a real consumer process over TCP: a one-worker consumer gets 50 calls
//! of F(10,000,000) (the largest served, about two seconds each here), all cancelled by their
//! caller once the first has started. The 49 queued ones never run, the running one stops at its next
//! check, the consumer answers a new call within a second, and the worker thread's CPU time
//! shows no work left over.

mod support;

use std::time::{Duration, Instant};

use rpc_apps::workloads::FibonacciGeneratorClient;
use support::Consumer;
use test_support::procfs::thread_cpu;
use transport_tcp::{TcpTransport, TcpTransportConfig};

const CALLS: usize = 50;
const N: i64 = rpc_apps::workloads::MAX_N;

fn runs_of_calculate(consumer: &Consumer) -> usize {
    consumer
        .log()
        .iter()
        .filter(|line| line.contains("fibonacci_generator.calculate") && line.contains("running"))
        .count()
}

#[test]
fn cancelled_calls_never_run_and_the_running_one_stops() {
    let mut consumer = Consumer::start(&["--transport", "tcp", "--no-model", "--workers", "1"]);
    let pid = consumer.child.id();
    let runtime = test_support::current_thread_runtime();
    runtime.block_on(async {
        let transport =
            TcpTransport::new([consumer.port.to_string()], TcpTransportConfig::default())
                .expect("a transport");
        let client =
            FibonacciGeneratorClient::new(transport).with_timeout(Duration::from_secs(300));

        // The reference: the worker's CPU time for one whole F(N).
        let before = thread_cpu(pid, "rpc-worker-0").unwrap_or_default();
        client.calculate(N).await.expect("F(N)");
        let whole = thread_cpu(pid, "rpc-worker-0").expect("the worker thread") - before;
        println!("one whole F({N}) took {whole:?} of CPU");
        let before = thread_cpu(pid, "rpc-worker-0").expect("the worker thread");

        let calls: Vec<_> = (0..CALLS)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move { client.calculate(N).await })
            })
            .collect();
        let since = Instant::now();
        while runs_of_calculate(&consumer) == 1 {
            assert!(since.elapsed() < Duration::from_secs(30), "no call started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Let the first call get into its work.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let cancelled_at = Instant::now();
        for call in &calls {
            call.abort();
        }
        for call in calls {
            if let Ok(finished) = call.await {
                panic!(
                    "a call finished before it was cancelled: ok = {}",
                    finished.is_ok()
                );
            }
        }

        // The worker stops: its CPU time stops growing.
        let mut last = thread_cpu(pid, "rpc-worker-0").expect("the worker thread");
        let stopped_after = loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = thread_cpu(pid, "rpc-worker-0").expect("the worker thread");
            if now == last {
                break cancelled_at.elapsed();
            }
            last = now;
            assert!(
                cancelled_at.elapsed() < Duration::from_secs(2),
                "the worker kept working"
            );
        };
        let used = last - before;
        println!(
            "the running call stopped within {stopped_after:?} of its cancellation, \
             having used {used:?} of CPU"
        );
        assert!(used * 4 < whole * 3, "it ran on: {used:?} of {whole:?}");

        // A new call is answered at once.
        let asked = Instant::now();
        let answer = client.calculate(90).await.expect("F(90)");
        assert_eq!(answer.to_string(), "2880067194370816120");
        let answered_in = asked.elapsed();
        println!("a new call was answered in {answered_in:?}");
        assert!(answered_in < Duration::from_secs(1), "{answered_in:?}");

        // No leftover work: the worker stays idle.
        let idle_from = thread_cpu(pid, "rpc-worker-0").expect("the worker thread");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle_to = thread_cpu(pid, "rpc-worker-0").expect("the worker thread");
        println!("worker CPU time: {last:?} when stopped, {idle_to:?} a second after F(90)");
        assert!(
            idle_to - idle_from <= Duration::from_millis(20),
            "{idle_from:?} -> {idle_to:?}"
        );
    });
    // Three runs of the procedure: the reference, the first cancelled call, and F(90).
    assert_eq!(runs_of_calculate(&consumer), 3, "queued calls ran");
    consumer.signal("INT");
    consumer.wait_exit(Duration::from_secs(10));
}
