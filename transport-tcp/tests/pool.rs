//! The pool over several consumers: capacity, balancing, failover, rejoining, deadlines.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, Consumer, Runs};
use futures::future::join_all;
use rpc_core::{Client, RpcError};
use transport_tcp::{TcpServer, TcpServerConfig, TcpTransport, TcpTransportConfig};

fn client(pool: &TcpTransport, timeout: Duration) -> Client {
    Client::new(pool.clone()).with_timeout(timeout)
}

async fn slow(client: &Client, tag: &str, ms: u64) -> Result<String, RpcError> {
    client.call("work.slow", &(tag, ms)).await
}

/// Waits until every consumer of `pool` is up.
async fn all_up(pool: &TcpTransport) {
    eventually(Duration::from_secs(10), "every consumer is up", || {
        pool.consumers().iter().all(|c| c.up)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_learns_each_consumers_capacity() {
    let a = Consumer::start("127.0.0.1:0", 3, TcpServerConfig::default());
    let b = Consumer::start("127.0.0.1:0", 1, TcpServerConfig::default());
    let pool = common::pool(&[&a, &b]);
    all_up(&pool).await;
    let capacities: Vec<usize> = pool.consumers().iter().map(|c| c.capacity).collect();
    assert_eq!(capacities, [3, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_task_on_one_consumer_does_not_hold_up_the_others() {
    let a = Consumer::start("127.0.0.1:0", 1, TcpServerConfig::default());
    let b = Consumer::start("127.0.0.1:0", 1, TcpServerConfig::default());
    let pool = common::pool(&[&a, &b]);
    all_up(&pool).await;
    let client = client(&pool, Duration::from_secs(30));
    let long = tokio::spawn({
        let client = client.clone();
        async move { slow(&client, "long", 3_000).await }
    });
    eventually(Duration::from_secs(5), "the long call is sent", || {
        pool.consumers().iter().any(|c| c.outstanding == 1)
    })
    .await;
    let started = Instant::now();
    for i in 0..20 {
        let tag = format!("quick{i}");
        assert_eq!(slow(&client, &tag, 10).await.as_deref(), Ok(tag.as_str()));
    }
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "quick calls waited behind the slow one: {:?}",
        started.elapsed()
    );
    assert_eq!(long.await.expect("task").as_deref(), Ok("long"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_capacity_wait_in_the_producer() {
    let a = Consumer::start("127.0.0.1:0", 1, TcpServerConfig::default());
    let pool = common::pool(&[&a]);
    all_up(&pool).await;
    let client = client(&pool, Duration::from_secs(30));
    let calls = (0..8).map(|i| {
        let client = client.clone();
        tokio::spawn(async move { slow(&client, &format!("queued{i}"), 100).await })
    });
    let calls: Vec<_> = calls.collect();
    let mut most = 0;
    for _ in 0..20 {
        most = most.max(pool.consumers()[0].outstanding);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(most, 3, "capacity 1 + 2 queued");
    for call in join_all(calls).await {
        assert!(call.expect("task").is_ok());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_mid_call_the_call_completes_on_the_other() {
    let a = Consumer::start("127.0.0.1:0", 1, TcpServerConfig::default());
    let b = Consumer::start("127.0.0.1:0", 1, TcpServerConfig::default());
    let pool = common::pool(&[&a, &b]);
    all_up(&pool).await;
    let (runs_a, runs_b) = (a.runs.clone(), b.runs.clone());
    let runs = move |tag: &str| runs_a.of(tag) + runs_b.of(tag);
    let client = client(&pool, Duration::from_secs(30));
    let call = tokio::spawn({
        let client = client.clone();
        async move { slow(&client, "killed", 1_000).await }
    });
    eventually(Duration::from_secs(5), "the call runs", || {
        runs("killed") == 1
    })
    .await;
    let busy = pool
        .consumers()
        .iter()
        .position(|c| c.outstanding == 1)
        .expect("one consumer holds the call");
    let (victim, survivor) = if busy == 0 { (a, b) } else { (b, a) };
    victim.kill();
    let result = tokio::time::timeout(Duration::from_secs(15), call)
        .await
        .expect("the call completes")
        .expect("task");
    assert_eq!(result.as_deref(), Ok("killed"));
    assert_eq!(
        runs("killed"),
        2,
        "run again on the survivor (at-least-once)"
    );
    let status = pool.consumers();
    assert!(!status[busy].up, "the killed consumer is out of rotation");
    assert_eq!(status[busy].retried, 1);
    assert_eq!(status[1 - busy].completed, 1);
    // Later calls go to the survivor alone, and the answer says so.
    assert_eq!(slow(&client, "after", 1).await.as_deref(), Ok("after"));
    let args = rpc_core::encoding::to_bincode(&("traced",)).expect("encode");
    let call = rpc_core::Call::new("work.echo", rpc_core::Encoding::Bincode, args);
    let answer = rpc_core::Transport::call_traced(&pool, call).await;
    assert!(answer.result.is_ok());
    assert_eq!(answer.consumer, Some(survivor.addr.to_string()));
    drop(survivor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_rejoins_the_rotation() {
    let a = Consumer::start("127.0.0.1:0", 1, TcpServerConfig::default());
    let b = Consumer::start("127.0.0.1:0", 1, TcpServerConfig::default());
    let addr = a.addr;
    let pool = common::pool(&[&a, &b]);
    all_up(&pool).await;
    a.kill();
    eventually(
        Duration::from_secs(10),
        "the killed consumer is out",
        || !pool.consumers()[0].up,
    )
    .await;
    let client = client(&pool, Duration::from_secs(10));
    for i in 0..4 {
        assert!(slow(&client, &format!("while-down{i}"), 1).await.is_ok());
    }
    let a = Consumer::start(&addr.to_string(), 1, TcpServerConfig::default());
    eventually(
        Duration::from_secs(15),
        "the restarted consumer is back",
        || pool.consumers()[0].up,
    )
    .await;
    let before = pool.consumers()[0].completed;
    let calls = (0..6).map(|i| {
        let client = client.clone();
        async move { slow(&client, &format!("back{i}"), 200).await }
    });
    for call in join_all(calls).await {
        assert!(call.is_ok());
    }
    assert!(
        pool.consumers()[0].completed > before,
        "{:?}",
        pool.consumers()
    );
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_consumer_down_calls_fail_with_no_consumer() {
    let a = Consumer::start("127.0.0.1:0", 1, TcpServerConfig::default());
    let addr = a.addr;
    a.kill();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pool = common::pool_at(&[addr]);
    let client = client(&pool, Duration::from_secs(30));
    let started = Instant::now();
    match slow(&client, "nobody", 1).await {
        Err(RpcError::NoConsumer(message)) => assert!(message.contains(&addr.to_string())),
        other => panic!("expected no consumer, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_address_list_is_refused() {
    let none: [&str; 0] = [];
    assert!(matches!(
        TcpTransport::new(none, TcpTransportConfig::default()),
        Err(RpcError::NoConsumer(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_deadline_passes_in_the_producer_is_never_sent() {
    let a = Consumer::start("127.0.0.1:0", 1, TcpServerConfig::default());
    let pool = common::pool(&[&a]);
    all_up(&pool).await;
    let client = client(&pool, Duration::from_secs(30));
    // Fill the consumer: 1 running + 2 queued.
    let fill: Vec<_> = (0..3)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { slow(&client, &format!("fill{i}"), 600).await })
        })
        .collect();
    eventually(Duration::from_secs(5), "the consumer is full", || {
        pool.consumers()[0].outstanding == 3
    })
    .await;
    let short = client.clone().with_timeout(Duration::from_millis(200));
    assert_eq!(
        slow(&short, "never-sent", 1).await,
        Err(RpcError::DeadlineExceeded)
    );
    for call in join_all(fill).await {
        assert!(call.expect("task").is_ok());
    }
    assert_eq!(a.runs.of("never-sent"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_frees_its_place() {
    let a = Consumer::start("127.0.0.1:0", 1, TcpServerConfig::default());
    let pool = common::pool(&[&a]);
    all_up(&pool).await;
    let client = client(&pool, Duration::from_secs(30));
    let dropped = tokio::time::timeout(Duration::from_millis(200), slow(&client, "dropped", 500));
    assert!(dropped.await.is_err(), "the call future was dropped");
    assert_eq!(pool.consumers()[0].outstanding, 0);
    // Its late reply is discarded; the next call gets its own.
    assert_eq!(slow(&client, "next", 1).await.as_deref(), Ok("next"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_answers_the_calls_already_started() {
    let runs = Runs::default();
    let registry = common::counted_registry(2, &runs);
    let server = TcpServer::bind("127.0.0.1:0", registry, TcpServerConfig::default())
        .await
        .expect("bind");
    let pool = common::pool_at(&[server.local_addr()]);
    all_up(&pool).await;
    let client = client(&pool, Duration::from_secs(30));
    let calls: Vec<_> = (0..2)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { slow(&client, &format!("graceful{i}"), 500).await })
        })
        .collect();
    eventually(Duration::from_secs(5), "both calls run", || {
        runs.of("graceful0") == 1 && runs.of("graceful1") == 1
    })
    .await;
    server.shutdown().await;
    for call in join_all(calls).await {
        assert!(call.expect("task").is_ok());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_calls_and_replies_are_protocol_errors() {
    let mut config = TcpServerConfig::default();
    config.max_frame = 4096;
    let server = TcpServer::bind("127.0.0.1:0", common::registry(1), config)
        .await
        .expect("bind");
    let pool = common::pool_at(&[server.local_addr()]);
    let client = client(&pool, Duration::from_secs(10));
    // Refused by the producer before it is sent: the consumer said its limit.
    let big = "x".repeat(8192);
    let echo: Result<String, RpcError> = client.call("work.echo", &(big,)).await;
    assert!(matches!(echo, Err(RpcError::Protocol(_))), "{echo:?}");
    // A reply over the limit becomes a protocol error for that call alone.
    let mut limited = TcpTransportConfig::default();
    limited.max_frame = 2048;
    let small_pool = TcpTransport::new([server.local_addr().to_string()], limited).expect("pool");
    let small_client = Client::new(small_pool).with_timeout(Duration::from_secs(10));
    let echo: Result<String, RpcError> = small_client.call("work.repeat", &("y", 3000usize)).await;
    assert!(matches!(echo, Err(RpcError::Protocol(_))), "{echo:?}");
    let echo: Result<String, RpcError> = small_client.call("work.repeat", &("y", 30usize)).await;
    assert_eq!(echo.as_deref(), Ok("y".repeat(30).as_str()));
    let echo: Result<String, RpcError> = client.call("work.echo", &("fine",)).await;
    assert_eq!(echo.as_deref(), Ok("fine"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_and_the_pool_reconnects() {
    let mut config = TcpServerConfig::default();
    config.idle_timeout = Duration::from_millis(300);
    let server = TcpServer::bind("127.0.0.1:0", common::registry(1), config)
        .await
        .expect("bind");
    let pool = common::pool_at(&[server.local_addr()]);
    let client = client(&pool, Duration::from_secs(10));
    assert_eq!(slow(&client, "before", 1).await.as_deref(), Ok("before"));
    // The consumer closes the silent connection; the pool notices and reconnects.
    eventually(Duration::from_secs(10), "the pool reconnects", || {
        pool.consumers()[0].connects >= 2
    })
    .await;
    assert_eq!(slow(&client, "after", 1).await.as_deref(), Ok("after"));
    server.shutdown().await;
}

/// A consumer that completes the handshake and then answers nothing, its socket open: a
/// process stopped (SIGSTOP) or wedged.
async fn hung_consumer() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut hello = [0u8; 16];
            if stream.read_exact(&mut hello).await.is_err() {
                continue;
            }
            // Welcome: variant 0, version 4, 1 worker, frames up to 16 MiB, no batch
            // procedure, no proof.
            let mut welcome = vec![0, 0, 0, 32, 0, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1];
            welcome.extend_from_slice(&[0; 16]);
            let _ = stream.write_all(&welcome).await;
            held.push(stream);
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_answering_is_taken_out_of_rotation() {
    let (hung, hung_task) = hung_consumer().await;
    let real = Consumer::start("127.0.0.1:0", 2, TcpServerConfig::default());
    let mut config = TcpTransportConfig::default();
    config.heartbeat_interval = Duration::from_millis(300);
    config.backoff_max = Duration::from_millis(500);
    let pool = TcpTransport::new([hung.to_string(), real.addr.to_string()], config).expect("pool");
    all_up(&pool).await;
    let client = client(&pool, Duration::from_secs(20));
    let calls = (0..6).map(|i| {
        let client = client.clone();
        async move { slow(&client, &format!("hung{i}"), 10).await }
    });
    for (i, result) in join_all(calls).await.into_iter().enumerate() {
        assert_eq!(result, Ok(format!("hung{i}")));
    }
    eventually(
        Duration::from_secs(10),
        "the silent consumer is out",
        || {
            let hung = &pool.consumers()[0];
            !hung.up && hung.last_error.as_deref() == Some("stopped answering")
        },
    )
    .await;
    hung_task.abort();
}

/// Calls beyond the consumers' room wait in a first come, first served line: a call made
/// later never takes a freed place ahead of one already waiting. 16 callers each make 40 calls
/// one after another against one consumer with room for 3; a call is overtaken when a call
/// made after it is answered before it. Without the line, a caller whose call was just
/// answered takes the freed place at once, and calls already waiting are overtaken again and
/// again.
#[tokio::test]
async fn waiting_calls_are_served_first_come_first_served() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    let a = Consumer::start("127.0.0.1:0", 1, TcpServerConfig::default());
    let pool = common::pool(&[&a]);
    all_up(&pool).await;
    let client = client(&pool, Duration::from_secs(30));
    let clock = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let callers = (0..16).map(|caller| {
        let (client, clock, calls) = (client.clone(), clock.clone(), calls.clone());
        tokio::spawn(async move {
            for i in 0..40 {
                let made = clock.fetch_add(1, Ordering::SeqCst);
                let tag = format!("{caller}.{i}");
                let echo: Result<String, RpcError> = client.call("work.echo", &(&tag,)).await;
                assert_eq!(echo.as_deref(), Ok(tag.as_str()));
                let answered = clock.fetch_add(1, Ordering::SeqCst);
                calls.lock().unwrap().push((made, answered));
            }
        })
    });
    for caller in join_all(callers).await {
        caller.expect("caller task");
    }
    let calls = calls.lock().unwrap();
    let most_overtaken = calls
        .iter()
        .map(|&(made, answered)| {
            calls
                .iter()
                .filter(|&&(m, a)| m > made && a < answered)
                .count()
        })
        .max()
        .unwrap_or(0);
    // Calls already sent to the consumer can finish in any order among themselves (its
    // worker and its replies), so allow the consumer's room of 3 and no more.
    assert!(
        most_overtaken <= 3,
        "a call was overtaken by {most_overtaken} calls made after it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_the_full_size_form_on_a_consumer_fed_by_one_pool() {
    // One worker: with only `capacity + queued_per_consumer` (3) calls let wait on it, no
    // batch could hold more than 3 calls.
    let a = Consumer::start("127.0.0.1:0", 1, TcpServerConfig::default());
    let pool = common::pool(&[&a]);
    all_up(&pool).await;
    let client = client(&pool, Duration::from_secs(30));
    let calls = (0..64).map(|i| {
        let client = client.clone();
        async move {
            let text = "x".repeat(i);
            let weight: Result<usize, RpcError> = client.call("work.weigh", &(text,)).await;
            assert_eq!(weight, Ok(i), "call {i}");
        }
    });
    join_all(calls).await;
    let batches = a.runs.batches();
    assert_eq!(batches.iter().sum::<usize>(), 64, "{batches:?}");
    assert!(
        batches.iter().all(|&size| size <= common::BATCH),
        "{batches:?}"
    );
    let full = batches
        .iter()
        .filter(|&&size| size == common::BATCH)
        .count();
    assert!(
        full >= 4,
        "only {full} batches of {}: {batches:?}",
        common::BATCH
    );
}

/// The most calls each consumer of `pool` held at once while `work` ran, sampled every
/// millisecond.
async fn most_outstanding<F: std::future::Future>(pool: &TcpTransport, work: F) -> Vec<usize> {
    let mut most = vec![0; pool.consumers().len()];
    tokio::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    loop {
        tokio::select! {
            _ = &mut work => return most,
            _ = tick.tick() => {
                for (most, c) in most.iter_mut().zip(pool.consumers()) {
                    *most = (*most).max(c.outstanding);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cheap_calls_widen_the_pipeline_and_heavy_ones_still_spread() {
    // One worker each: by default a consumer holds its worker + 2 calls of a procedure not
    // yet known to be fast.
    let a = Consumer::start("127.0.0.1:0", 1, TcpServerConfig::default());
    let b = Consumer::start("127.0.0.1:0", 1, TcpServerConfig::default());
    let pool = common::pool(&[&a, &b]);
    all_up(&pool).await;
    let client = client(&pool, Duration::from_secs(30));

    // Many cheap calls at once: they come back well within the budget, so the window of
    // `work.echo` grows and more than worker + 2 are on the wire to a consumer.
    let cheap = join_all((0..64).map(|caller| {
        let client = client.clone();
        async move {
            let until = Instant::now() + Duration::from_millis(500);
            let mut i = 0;
            while Instant::now() < until {
                let tag = format!("{caller}.{i}");
                let echo: Result<String, RpcError> = client.call("work.echo", &(&tag,)).await;
                assert_eq!(echo.as_deref(), Ok(tag.as_str()));
                i += 1;
            }
        }
    }));
    let most = most_outstanding(&pool, cheap).await;
    assert!(
        most.iter().any(|&n| n > 3),
        "cheap calls never had more than worker + 2 on a consumer: {most:?}"
    );

    // Then a heavy procedure: it keeps the floor, so each consumer holds at most its worker +
    // 2 of it and the rest wait in the producer, for whichever consumer frees a place.
    let heavy = join_all((0..10).map(|i| {
        let client = client.clone();
        async move {
            let tag = format!("heavy{i}");
            assert_eq!(slow(&client, &tag, 150).await.as_deref(), Ok(tag.as_str()));
        }
    }));
    let most = most_outstanding(&pool, heavy).await;
    assert_eq!(most, [3, 3], "heavy calls: worker + 2 on each consumer");
    let ran = |consumer: &Consumer| {
        (0..10)
            .filter(|i| consumer.runs.of(&format!("heavy{i}")) > 0)
            .count()
    };
    assert_eq!(ran(&a) + ran(&b), 10);
    assert!(
        ran(&a) >= 3 && ran(&b) >= 3,
        "a ran {}, b ran {}",
        ran(&a),
        ran(&b)
    );
}
