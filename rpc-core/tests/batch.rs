//! Batch procedures (`#[batch(max = N)]`): callers call one at a time, the registry runs the
//! calls already waiting as one invocation (in-memory transport; the conformance suite runs
//! the same over every transport).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_core::{memory, Registry, RpcError};

/// Squares numbers in batches, recording each batch's size.
#[derive(Default)]
struct Squarer {
    sizes: Arc<Mutex<Vec<usize>>>,
    calls: AtomicU64,
}

#[rpc_core::handler]
impl Squarer {
    /// The square of each `n`; `n = 13` fails on its own; a batch holding `n = 666` panics.
    #[batch(max = 4, param = "n")]
    pub fn square(&self, numbers: Vec<i64>) -> Vec<Result<i64, RpcError>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.sizes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(numbers.len());
        assert!(!numbers.contains(&666), "the devil's number");
        // Slow enough that calls made meanwhile wait and form the next batch.
        std::thread::sleep(Duration::from_millis(20));
        numbers
            .into_iter()
            .map(|n| match n {
                13 => Err(RpcError::Failed("unlucky".into())),
                n => Ok(n * n),
            })
            .collect()
    }
}

fn serve() -> (SquarerClient, Arc<Mutex<Vec<usize>>>, memory::MemoryServer) {
    serve_on(Registry::new().with_workers(1))
}

fn serve_on(
    mut registry: Registry,
) -> (SquarerClient, Arc<Mutex<Vec<usize>>>, memory::MemoryServer) {
    let squarer = Squarer::default();
    let sizes = squarer.sizes.clone();
    registry.register(squarer);
    let (transport, server) = memory::spawn(registry);
    (SquarerClient::new(transport), sizes, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_calls_run_as_one_batch_each_caller_getting_its_own_answer() {
    let (client, sizes, _server) = serve();
    let calls: Vec<_> = (0..40i64)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { (n, client.square(n).await) })
        })
        .collect();
    for call in calls {
        let (n, result) = call.await.expect("a task");
        match n {
            13 => assert_eq!(result, Err(RpcError::Failed("unlucky".into()))),
            n => assert_eq!(result, Ok(n * n)),
        }
    }
    let sizes = sizes.lock().expect("sizes").clone();
    assert_eq!(sizes.iter().sum::<usize>(), 40);
    assert!(sizes.iter().all(|&size| size <= 4), "{sizes:?}");
    assert!(
        sizes.iter().any(|&size| size > 1),
        "never batched: {sizes:?}"
    );
}

#[tokio::test]
async fn a_lone_call_runs_at_once_as_a_batch_of_one() {
    let (client, sizes, _server) = serve();
    let started = std::time::Instant::now();
    assert_eq!(client.square(7).await, Ok(49));
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(*sizes.lock().expect("sizes"), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_every_call_of_its_batch_and_the_next_batch_runs() {
    let (client, sizes, _server) = serve();
    // Occupy the worker so that the next three calls wait and form one batch.
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.square(1).await }
    });
    while sizes.lock().expect("sizes").is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let batch: Vec<_> = [2, 666, 3]
        .into_iter()
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { client.square(n).await })
        })
        .collect();
    assert_eq!(first.await.expect("task"), Ok(1));
    for call in batch {
        match call.await.expect("task") {
            Err(RpcError::Panicked(message)) => assert!(message.contains("devil"), "{message}"),
            other => panic!("expected a panic, got {other:?}"),
        }
    }
    assert_eq!(client.square(5).await, Ok(25));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_call_is_dropped_from_its_batch() {
    let (client, sizes, _server) = serve();
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.square(1).await }
    });
    while sizes.lock().expect("sizes").is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Waits behind the first call...
    let later = tokio::spawn({
        let client = client.clone();
        async move { client.square(3).await }
    });
    tokio::time::sleep(Duration::from_millis(2)).await;
    // ... and this one behind it, expiring while the first call holds the worker: when the
    // worker takes `later`, it must leave this one out of the batch.
    let hurried = client.clone().with_timeout(Duration::from_millis(1));
    assert_eq!(hurried.square(2).await, Err(RpcError::DeadlineExceeded));
    assert_eq!(first.await.expect("task"), Ok(1));
    assert_eq!(later.await.expect("task"), Ok(9));
    assert_eq!(
        *sizes.lock().expect("sizes"),
        [1, 1],
        "the expired call ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_limit_of_one_runs_every_call_alone() {
    let registry = Registry::new().with_workers(1).with_batch_limit(1);
    let (client, sizes, _server) = serve_on(registry);
    let calls: Vec<_> = (0..12i64)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { (n, client.square(n).await) })
        })
        .collect();
    for call in calls {
        let (n, result) = call.await.expect("a task");
        assert_eq!(result, Ok(n * n));
    }
    assert_eq!(*sizes.lock().expect("sizes"), [1; 12]);
}
