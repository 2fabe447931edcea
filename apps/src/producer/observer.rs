//! [`Observer`]: where every finished call is counted once, whether the task generator or the
//! HTTP front door made it: the summary [`Stats`], the dashboard's [`Timeline`] and the
//! Prometheus metrics.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rpc_core::RpcError;

use super::stats::Stats;
use super::timeline::{Second, Timeline};
use crate::prometheus::names;

/// How many procedure or consumer names are told apart; beyond that, calls count under
/// `(other)`. HTTP clients choose the procedure name: without a cap, a client sending random
/// names would grow every table and every metric without end.
pub const MAX_NAMES: usize = 64;

/// The name calls to a procedure nobody serves are counted under, whatever name was asked.
pub const UNKNOWN: &str = "(unknown)";

/// The name calls beyond [`MAX_NAMES`] distinct names are counted under.
pub const OTHER: &str = "(other)";

/// Counts finished calls; shared by everything in the producer that calls.
#[derive(Debug, Default)]
pub struct Observer {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    stats: Stats,
    timeline: Timeline,
}

impl Observer {
    /// An observer that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one finished call of `procedure`, answered by `consumer` when known, that took
    /// `latency`.
    pub fn record(
        &self,
        procedure: &str,
        consumer: Option<&str>,
        latency: Duration,
        outcome: Result<(), &RpcError>,
    ) {
        let outcome_label = match outcome {
            Ok(()) => "ok".to_string(),
            Err(err) => err.kind().to_string(),
        };
        let (procedure, consumer) = {
            let mut inner = self.lock();
            let procedure = match outcome {
                Err(RpcError::UnknownProcedure(_)) => UNKNOWN.to_string(),
                _ => capped(
                    procedure,
                    inner.stats.procedures().contains_key(procedure),
                    inner.stats.procedures().len(),
                ),
            };
            let consumer = consumer.unwrap_or(if outcome.is_ok() {
                "(unknown)"
            } else {
                "(none)"
            });
            let consumer = capped(
                consumer,
                inner.stats.consumers().contains_key(consumer),
                inner.stats.consumers().len(),
            );
            inner
                .stats
                .record(&procedure, Some(&consumer), latency, outcome);
            inner
                .timeline
                .record(Instant::now(), latency, outcome.is_ok());
            (procedure, consumer)
        };
        metrics::counter!(
            names::PRODUCER_CALLS,
            "procedure" => procedure.clone(),
            "consumer" => consumer,
            "outcome" => outcome_label
        )
        .increment(1);
        metrics::histogram!(names::PRODUCER_CALL_SECONDS, "procedure" => procedure)
            .record(latency.as_secs_f64());
    }

    /// Everything counted so far (a copy).
    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// The last minutes, one [`Second`] each, oldest first.
    pub fn recent(&self) -> Vec<Second> {
        self.lock().timeline.recent(Instant::now())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `name` itself when it is already counted or there is still room, else [`OTHER`].
fn capped(name: &str, known: bool, count: usize) -> String {
    if known || count < MAX_NAMES {
        name.to_string()
    } else {
        OTHER.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_outside_are_bounded() {
        let observer = Observer::new();
        let ms = Duration::from_millis(1);
        for i in 0..1_000 {
            observer.record(&format!("random.{i}"), Some("c"), ms, Ok(()));
            let unknown = RpcError::UnknownProcedure(format!("nobody.{i}"));
            observer.record(&format!("nobody.{i}"), None, ms, Err(&unknown));
        }
        let stats = observer.stats();
        assert_eq!(
            stats.procedures().len(),
            MAX_NAMES + 1,
            "the names, then (other)"
        );
        assert_eq!(stats.procedures()[UNKNOWN].failed, 1_000);
        assert_eq!(stats.procedures()[OTHER].ok, 1_000 - (MAX_NAMES as u64 - 1));
        assert_eq!(stats.total().ok + stats.total().failed, 2_000);
    }
}
