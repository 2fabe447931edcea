//! [`Stats`]: what the producer has seen: counts, latencies and errors, per procedure and per
//! consumer, and the status line and summary table made from them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
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

/// Latencies in bounded memory: an HDR histogram of microseconds, three significant digits,
/// from 1 us to 10 min (longer ones count as 10 min), about 160 KiB however many calls it
/// holds. It replaces keeping every latency and sorting them all for each percentile.
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

/// The longest latency a [`Latencies`] tells apart, in microseconds (10 minutes).
const LONGEST_MICROS: u64 = 600_000_000;

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// An empty histogram.
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, LONGEST_MICROS, 3)
            .expect("1 us to 10 min at 3 significant digits are valid bounds");
        Self { histogram }
    }

    /// Counts one latency.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(micros.max(1));
    }

    /// How many latencies were counted.
    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// Whether none was counted.
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The `q`-quantile (0..=1), within 0.1 %; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        (!self.is_empty())
            .then(|| Duration::from_micros(self.histogram.value_at_quantile(q.clamp(0.0, 1.0))))
    }

    /// The largest latency counted; `None` when empty.
    pub fn max(&self) -> Option<Duration> {
        (!self.is_empty()).then(|| Duration::from_micros(self.histogram.max()))
    }

    /// Forgets every latency (the memory stays allocated for the next ones).
    pub fn clear(&mut self) {
        self.histogram.reset();
    }
}

/// The `q`-quantile of `samples` (within 0.1 %), through a [`Latencies`] histogram.
pub fn quantile(samples: &[Duration], q: f64) -> Option<Duration> {
    let mut latencies = Latencies::new();
    for sample in samples {
        latencies.record(*sample);
    }
    latencies.quantile(q)
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
    fn quantiles_within_a_thousandth() {
        let samples: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        let near = |got: Option<Duration>, want: u64| {
            let got = got.expect("a quantile").as_secs_f64() * 1e3;
            assert!(
                (got - want as f64).abs() <= want as f64 * 1e-3,
                "{got} ms, want {want}"
            );
        };
        near(quantile(&samples, 0.5), 50);
        near(quantile(&samples, 0.99), 99);
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn latencies_stay_the_same_size_however_many() {
        let mut latencies = Latencies::new();
        for i in 0..1_000_000u64 {
            latencies.record(Duration::from_micros(i % 50_000));
        }
        latencies.record(Duration::from_secs(3600));
        assert_eq!(latencies.len(), 1_000_001);
        let max = latencies.max().unwrap().as_secs_f64();
        assert!((600.0..600.6).contains(&max), "capped at 10 min: {max} s");
        let p50 = latencies.quantile(0.5).unwrap().as_micros();
        assert!((24_900..=25_100).contains(&p50), "p50 {p50} us");
    }

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
