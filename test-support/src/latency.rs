//! [`Latencies`]: percentiles of many latencies in bounded memory.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

/// The longest latency told apart: a minute (longer ones count as a minute).
const HIGHEST_US: u64 = 60_000_000;

/// Latencies recorded in an HDR histogram (microseconds, 3 significant digits): the memory is
/// fixed whatever the number of calls, unlike a vector kept and sorted.
///
/// ```
/// use std::time::Duration;
/// use test_support::Latencies;
///
/// let mut latencies = Latencies::new();
/// for us in 1..=100 {
///     latencies.record(Duration::from_micros(us));
/// }
/// assert_eq!(latencies.p50(), Duration::from_micros(50));
/// assert_eq!(latencies.p99(), Duration::from_micros(99));
/// assert_eq!(latencies.max(), Duration::from_micros(100));
/// assert_eq!(latencies.to_string(), "p50 50 µs, p99 99 µs, max 100 µs (100 calls)");
/// ```
#[derive(Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Latencies {
    /// An empty summary.
    pub fn new() -> Self {
        Self {
            histogram: Histogram::new_with_bounds(1, HIGHEST_US, 3)
                .expect("valid histogram bounds"),
        }
    }

    /// Records one latency (rounded to the microsecond, at least 1 µs, at most a minute).
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(us.clamp(1, HIGHEST_US));
    }

    /// Adds every latency of `other` (e.g. of another task) to this one.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so the addition cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The latency at quantile `q` (0.0 to 1.0); zero when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.histogram.value_at_quantile(q))
    }

    /// The median latency.
    pub fn p50(&self) -> Duration {
        self.quantile(0.50)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    /// The longest latency recorded.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.histogram.max())
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for Latencies {
    /// `p50 <µs> µs, p99 <µs> µs, max <µs> µs (<n> calls)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {} µs, p99 {} µs, max {} µs ({} calls)",
            self.p50().as_micros(),
            self.p99().as_micros(),
            self.max().as_micros(),
            self.count()
        )
    }
}

impl fmt::Debug for Latencies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Latencies({self})")
    }
}
