//! Keeps one consumer connected: connects, watches the connection, and after a failure
//! probes again with jittered exponential backoff (the `backon` crate's).

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
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
            opened = timeout(config.connect_timeout, Connection::open(addr, config.max_frame)) => opened,
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

/// The waits between probes: doubling from `backoff_min` to `backoff_max`, each cut by a
/// random part of up to a half, so that producers restarted together do not probe in step.
///
/// `backon` adds its jitter (up to the wait itself) on top of the wait, so it is given half
/// the bounds: each wait then falls in [half, all) of the doubling sequence, never past
/// `backoff_max`.
fn backoff(config: &TcpTransportConfig) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::new()
        .with_min_delay(config.backoff_min / 2)
        .with_max_delay(config.backoff_max / 2)
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_with_jitter_and_stay_under_the_maximum() {
        let config = TcpTransportConfig {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1600),
            ..TcpTransportConfig::default()
        };
        let waits: Vec<Duration> = backoff(&config).take(8).collect();
        let nominal = [100, 200, 400, 800, 1600, 1600, 1600, 1600].map(Duration::from_millis);
        for (wait, nominal) in waits.iter().zip(nominal) {
            assert!(
                *wait >= nominal / 2 && *wait < nominal,
                "{wait:?} for {nominal:?}"
            );
        }
        // Jittered: of eight waits drawn at random, some are well above the bottom (all eight
        // within a tenth of it: a chance of 1e-8).
        let above = |(w, n): (&Duration, Duration)| *w > n / 2 + n / 20;
        assert!(waits.iter().zip(nominal).any(above), "{waits:?}");
    }
}
