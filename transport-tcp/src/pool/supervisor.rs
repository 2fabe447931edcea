//! Keeps one consumer connected: connects, watches the connection, and after a failure
//! probes again with jittered exponential backoff ([`rpc_core::backoff`]).

use std::sync::Arc;
use std::time::Duration;

use rpc_core::RpcError;
use tokio::time::{sleep, timeout, Instant};

use super::balance::Shared;
use super::connection::Connection;
use crate::config::TcpTransportConfig;
use crate::error::Error;

/// Runs until the pool is dropped.
pub(crate) async fn supervise(shared: Arc<Shared>, index: usize) {
    let config = &shared.config;
    let addr = &shared.addrs[index];
    let mut backoff = backoff(config);
    let mut failures = 0u32;
    loop {
        let opened = tokio::select! {
            _ = shared.stop.cancelled() => return,
            opened = timeout(config.connect_timeout, Connection::open(addr, config)) => opened,
        };
        match opened.unwrap_or(Err(Error::ConnectTimeout)) {
            Ok(connection) => {
                tracing::info!(consumer = %addr, workers = connection.workers(), "consumer in rotation");
                let since = Instant::now();
                shared.up(index, connection.clone());
                failures = 0;
                match watch(&shared, &connection, addr).await {
                    Ended::Stopped => return,
                    Ended::Silent => {
                        // It accepts connections but answers nothing: back off as if refused.
                        shared.down(index, "stopped answering".into());
                    }
                    Ended::Closed => {
                        shared.down(index, "connection lost".into());
                        tracing::warn!(consumer = %addr, "connection to consumer lost: out of rotation");
                        // A long-lived connection (closed when idle, say) reconnects at once;
                        // one that keeps breaking right away backs off like a refused one.
                        if since.elapsed() >= config.backoff_max {
                            backoff = self::backoff(config);
                            continue;
                        }
                    }
                }
            }
            Err(err) => {
                if failures == 0 {
                    tracing::warn!(consumer = %addr, %err, "consumer unreachable: probing with backoff");
                } else {
                    tracing::debug!(consumer = %addr, %err, failures, "consumer still unreachable");
                }
                failures = failures.saturating_add(1);
                shared.down(index, RpcError::from(err).to_string());
            }
        }
        let wait = backoff.next().unwrap_or(config.backoff_max);
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = sleep(wait) => {}
        }
    }
}

/// How watching a connection ended.
enum Ended {
    /// The pool was dropped.
    Stopped,
    /// The connection closed, from either side.
    Closed,
    /// The consumer stopped answering; its connection is now closed.
    Silent,
}

/// Pings the consumer every heartbeat interval until the connection closes or the pool is
/// dropped; closes a connection whose consumer stopped answering.
async fn watch(shared: &Shared, connection: &Connection, addr: &str) -> Ended {
    let interval = shared.config.heartbeat_interval;
    let mut pinged = false;
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => return Ended::Stopped,
            _ = connection.closed() => return Ended::Closed,
            _ = sleep(interval) => {}
        }
        // Whatever came since the last ping (its pong, a reply) proves the consumer alive.
        let heard = connection.heard_since();
        if pinged && !heard {
            tracing::warn!(
                consumer = %addr,
                "consumer silent for {interval:?} after a ping: out of rotation"
            );
            connection.close();
            return Ended::Silent;
        }
        connection.ping();
        pinged = true;
    }
}

/// The waits between probes: [`rpc_core::backoff`] from `backoff_min` to `backoff_max`.
fn backoff(config: &TcpTransportConfig) -> impl Iterator<Item = Duration> {
    rpc_core::backoff(config.backoff_min, config.backoff_max)
}
