//! What the transport tests share: a handler, and consumers that can be killed.

#![allow(dead_code)] // Each test file uses its own part of this module.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_core::Registry;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;
use transport_tcp::{TcpServerConfig, TcpTransport, TcpTransportConfig};

pub mod raw;

/// How many times [`Work::slow`] started with each tag, and the size of each batch
/// [`Work::weigh`] ran, on the consumers that share it.
#[derive(Clone, Default)]
pub struct Runs(Arc<Mutex<HashMap<String, u32>>>, Arc<Mutex<Vec<usize>>>);

impl Runs {
    /// How many times [`Work::slow`] started with `tag`.
    pub fn of(&self, tag: &str) -> u32 {
        let runs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        runs.get(tag).copied().unwrap_or(0)
    }

    /// The size of each batch of [`Work::weigh`], in order.
    pub fn batches(&self) -> Vec<usize> {
        self.1.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every run of every procedure that counts them: [`Work::slow`]'s tags and
    /// [`Work::weigh`]'s calls.
    pub fn total(&self) -> usize {
        let runs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        runs.values().map(|&n| n as usize).sum::<usize>() + self.batches().iter().sum::<usize>()
    }

    fn count(&self, tag: &str) {
        let mut runs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *runs.entry(tag.to_string()).or_default() += 1;
    }
}

/// The procedures the transport tests call; it keeps its record of runs itself.
pub struct Work {
    runs: Runs,
}

#[rpc_core::handler]
impl Work {
    /// Returns its argument.
    pub fn echo(text: String) -> String {
        text
    }

    /// `text` repeated `times` times.
    pub fn repeat(text: String, times: usize) -> String {
        text.repeat(times)
    }

    /// Counts a run of `tag`, sleeps `ms` milliseconds and returns `tag`.
    pub fn slow(&self, tag: String, ms: u64) -> String {
        self.runs.count(&tag);
        std::thread::sleep(Duration::from_millis(ms));
        tag
    }

    /// The length of each text, as a batch procedure of at most [`BATCH`] calls that takes
    /// 20 ms per batch; records each batch's size.
    #[batch(max = 8)]
    pub fn weigh(&self, texts: Vec<String>) -> Vec<usize> {
        self.runs
            .1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(texts.len());
        std::thread::sleep(Duration::from_millis(20));
        texts.iter().map(String::len).collect()
    }
}

/// [`Work::weigh`]'s largest batch.
pub const BATCH: usize = 8;

/// A registry serving [`Work`] with `workers` workers, recording its runs in `runs`.
pub fn counted_registry(workers: usize, runs: &Runs) -> Registry {
    let mut registry = Registry::new().with_workers(workers);
    registry.register(Work { runs: runs.clone() });
    registry
}

/// A registry serving [`Work`] with `workers` workers, its runs recorded nowhere.
pub fn registry(workers: usize) -> Registry {
    counted_registry(workers, &Runs::default())
}

/// A consumer on a runtime of its own, so that a test can kill it outright: its tasks are
/// dropped and its sockets closed at once, as when a process dies.
pub struct Consumer {
    pub addr: SocketAddr,
    /// The runs of [`Work::slow`] on this consumer.
    pub runs: Runs,
    runtime: Option<Runtime>,
}

impl Consumer {
    /// Starts a consumer on `addr` (port 0 for a free one), retrying the bind for a while so
    /// that a consumer restarted on the port of a killed one gets it.
    pub fn start(addr: &str, workers: usize, config: TcpServerConfig) -> Self {
        let mut tries = 0;
        let listener = loop {
            match std::net::TcpListener::bind(addr) {
                Ok(listener) => break listener,
                Err(err) if tries < 100 => {
                    tries += 1;
                    eprintln!("bind {addr}: {err}; retrying");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(err) => panic!("bind {addr}: {err}"),
            }
        };
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("local address");
        let runtime = test_support::runtime(1);
        let runs = Runs::default();
        let registry = Arc::new(counted_registry(workers, &runs));
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let never = CancellationToken::new();
            transport_tcp::serve(listener, registry, config, never).await;
        });
        Self {
            addr,
            runs,
            runtime: Some(runtime),
        }
    }

    /// Kills the consumer: no call it holds is answered.
    pub fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A pool over `consumers` with quick probing, for tests.
pub fn pool(consumers: &[&Consumer]) -> TcpTransport {
    let addrs: Vec<SocketAddr> = consumers.iter().map(|c| c.addr).collect();
    pool_at(&addrs)
}

/// Polls `done` every 20 ms until it holds, failing after `within`.
pub async fn eventually(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A pool over consumer addresses, with quick probing, for tests.
pub fn pool_at(addrs: &[SocketAddr]) -> TcpTransport {
    let mut config = TcpTransportConfig::default();
    config.backoff_max = Duration::from_millis(500);
    config.no_consumer_wait = Duration::from_secs(2);
    TcpTransport::new(addrs.iter().map(|a| a.to_string()), config).expect("a pool")
}

/// Everything the consumer sends until it closes the connection (a reset counts as closed).
pub async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.expect("the consumer closes the connection");
    answer
}
