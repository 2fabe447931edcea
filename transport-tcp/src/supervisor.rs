//! Keeps one consumer connected: connects, watches the connection, and after a failure
//! probes again with exponential backoff.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rpc_core::RpcError;
use tokio::time::{sleep, timeout, Instant};

use crate::balance::Shared;
use crate::connection::Connection;

/// Runs until the pool is dropped.
pub(crate) async fn supervise(shared: Arc<Shared>, index: usize) {
    let config = &shared.config;
    let addr = &shared.addrs[index];
    let mut backoff = config.backoff_min;
    let mut failures = 0u32;
    loop {
        let opened = tokio::select! {
            _ = shared.stop.cancelled() => return,
            opened = timeout(config.connect_timeout, Connection::open(addr, config.max_frame)) => opened,
        };
        match opened.unwrap_or_else(|_| Err(RpcError::Io("connect timed out".into()))) {
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
                            backoff = config.backoff_min;
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
                shared.down(index, err.to_string());
            }
        }
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = sleep(jittered(backoff)) => {}
        }
        backoff = (backoff * 2).min(config.backoff_max);
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

/// `wait` scaled by a factor in [0.5, 1), so that producers restarted together do not probe in
/// step.
fn jittered(wait: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    wait.mul_f64(0.5 + f64::from(nanos % 1000) / 2000.0)
}
