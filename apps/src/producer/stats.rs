//! [`Stats`]: what the producer has seen: counts, latencies and errors, per procedure and per
//! consumer, and the status line and summary table made from them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

pub use latencies::{quantile, Latencies};
use rpc_core::RpcError;

/// Outcomes of a set of calls.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Calls answered with a result.
    pub ok: u64,
    /// Calls that failed.
    pub failed: u64,
    latencies: Latencies,
}

impl Tally {
    fn record(&mut self, latency: Duration, ok: bool) {
        if ok {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
        self.latencies.record(latency);
    }

    /// The `q`-quantile (0..=1) of the latencies; `None` before any call.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        self.latencies.quantile(q)
    }
}

/// Everything the producer has seen so far.
#[derive(Debug, Clone)]
pub struct Stats {
    started: Instant,
    all: Tally,
    procedures: BTreeMap<String, Tally>,
    consumers: BTreeMap<String, Tally>,
    errors: BTreeMap<String, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Empty statistics, the clock started now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            all: Tally::default(),
            procedures: BTreeMap::new(),
            consumers: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }

    /// Records one finished call.
    pub fn record(
        &mut self,
        procedure: &str,
        consumer: Option<&str>,
        latency: Duration,
        outcome: Result<(), &RpcError>,
    ) {
        let ok = outcome.is_ok();
        self.all.record(latency, ok);
        self.procedures
            .entry(procedure.to_string())
            .or_default()
            .record(latency, ok);
        let consumer = consumer.unwrap_or(if ok { "(unknown)" } else { "(none)" });
        self.consumers
            .entry(consumer.to_string())
            .or_default()
            .record(latency, ok);
        if let Err(err) = outcome {
            *self.errors.entry(err.kind().to_string()).or_default() += 1;
        }
    }

    /// All calls together.
    pub fn total(&self) -> &Tally {
        &self.all
    }

    /// Calls per procedure.
    pub fn procedures(&self) -> &BTreeMap<String, Tally> {
        &self.procedures
    }

    /// Calls per consumer.
    pub fn consumers(&self) -> &BTreeMap<String, Tally> {
        &self.consumers
    }

    /// Failed calls per error kind.
    pub fn errors(&self) -> &BTreeMap<String, u64> {
        &self.errors
    }

    /// Finished calls per second since the start.
    pub fn rate(&self) -> f64 {
        let done = (self.all.ok + self.all.failed) as f64;
        done / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    /// One line for the periodic log: done, in flight, queued, calls/s, p50/p99.
    pub fn status_line(&self, in_flight: usize, queued: usize) -> String {
        format!(
            "done {} (ok {}, failed {}), in flight {in_flight}, queued {queued}, {:.1} calls/s, p50 {}, p99 {}",
            self.all.ok + self.all.failed,
            self.all.ok,
            self.all.failed,
            self.rate(),
            millis(self.all.quantile(0.5)),
            millis(self.all.quantile(0.99)),
        )
    }

    /// The table printed on exit: per procedure and per consumer, ok, failed, p50, p99.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "summary: {} tasks, {} ok, {} failed in {:.1} s ({:.1} calls/s)",
            self.all.ok + self.all.failed,
            self.all.ok,
            self.all.failed,
            self.started.elapsed().as_secs_f64(),
            self.rate()
        );
        table(&mut out, "procedure", &self.procedures);
        table(&mut out, "consumer", &self.consumers);
        for (kind, count) in &self.errors {
            let _ = writeln!(out, "  errors {kind}: {count}");
        }
        out
    }
}

fn table(out: &mut String, heading: &str, rows: &BTreeMap<String, Tally>) {
    let width = rows
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max(heading.len());
    let _ = writeln!(
        out,
        "  {heading:<width$}  {:>7}  {:>7}  {:>10}  {:>10}",
        "ok", "failed", "p50", "p99"
    );
    for (name, tally) in rows {
        let _ = writeln!(
            out,
            "  {name:<width$}  {:>7}  {:>7}  {:>10}  {:>10}",
            tally.ok,
            tally.failed,
            millis(tally.quantile(0.5)),
            millis(tally.quantile(0.99)),
        );
    }
}

/// `12.3 ms`, or `-` when there is nothing to show.
pub fn millis(duration: Option<Duration>) -> String {
    duration.map_or_else(
        || "-".to_string(),
        |d| format!("{:.1} ms", d.as_secs_f64() * 1e3),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_per_procedure_and_consumer() {
        let mut stats = Stats::new();
        let ms = Duration::from_millis;
        stats.record("a.x", Some("c1"), ms(1), Ok(()));
        stats.record("a.x", Some("c2"), ms(3), Ok(()));
        stats.record("b.y", None, ms(2), Err(&RpcError::DeadlineExceeded));
        assert_eq!((stats.total().ok, stats.total().failed), (2, 1));
        assert_eq!(stats.procedures()["a.x"].ok, 2);
        assert_eq!(stats.consumers()["c2"].ok, 1);
        assert_eq!(stats.errors()["DeadlineExceeded"], 1);
        let summary = stats.summary();
        assert!(summary.contains("3 tasks, 2 ok, 1 failed"), "{summary}");
    }
}
