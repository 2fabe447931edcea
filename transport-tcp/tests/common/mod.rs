//! What the transport tests share: a handler, and consumers that can be killed.

#![allow(dead_code)] // Each test file uses its own part of this module.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_core::Registry;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;
use transport_tcp::{Pool, PoolConfig, ServerConfig};

static RUNS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

/// How many times [`Work::slow`] started with `tag`, across every consumer of this process.
pub fn runs(tag: &str) -> u32 {
    let runs = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    runs.as_ref().and_then(|r| r.get(tag).copied()).unwrap_or(0)
}

/// The procedures the transport tests call.
pub struct Work;

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
    pub fn slow(tag: String, ms: u64) -> String {
        {
            let mut runs = RUNS.lock().unwrap_or_else(|e| e.into_inner());
            *runs
                .get_or_insert_with(HashMap::new)
                .entry(tag.clone())
                .or_default() += 1;
        }
        std::thread::sleep(Duration::from_millis(ms));
        tag
    }
}

/// A registry serving [`Work`] with `workers` workers.
pub fn registry(workers: usize) -> Registry {
    let mut registry = Registry::new().with_workers(workers);
    registry.register(Work);
    registry
}

/// A consumer on a runtime of its own, so that a test can kill it outright: its tasks are
/// dropped and its sockets closed at once, as when a process dies.
pub struct Consumer {
    pub addr: SocketAddr,
    runtime: Option<Runtime>,
}

impl Consumer {
    /// Starts a consumer on `addr` (port 0 for a free one), retrying the bind for a while so
    /// that a consumer restarted on the port of a killed one gets it.
    pub fn start(addr: &str, workers: usize, config: ServerConfig) -> Self {
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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let never = CancellationToken::new();
            transport_tcp::run(listener, Arc::new(registry(workers)), config, never).await;
        });
        Self {
            addr,
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
pub fn pool(consumers: &[&Consumer]) -> Pool {
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
pub fn pool_at(addrs: &[SocketAddr]) -> Pool {
    let mut config = PoolConfig::default();
    config.backoff_max = Duration::from_millis(500);
    config.no_consumer_wait = Duration::from_secs(2);
    Pool::new(addrs.iter().map(|a| a.to_string()), config).expect("a pool")
}
