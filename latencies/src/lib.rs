//! [`Latencies`]: percentiles of many latencies in bounded memory, for the producer's
//! statistics and dashboard and for every bench and test that prints a p50 or a p99.
//!
//! ```
//! use std::time::Duration;
//! use latencies::Latencies;
//!
//! let mut latencies = Latencies::new();
//! for us in 1..=100 {
//!     latencies.record(Duration::from_micros(us));
//! }
//! assert_eq!(latencies.p50(), Duration::from_micros(50));
//! assert_eq!(latencies.quantile(0.99), Some(Duration::from_micros(99)));
//! assert_eq!(latencies.max(), Some(Duration::from_micros(100)));
//! assert_eq!(latencies.to_string(), "p50 50 µs, p99 99 µs, max 100 µs (100 calls)");
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

/// The longest latency a [`Latencies`] tells apart, in microseconds (10 minutes).
const LONGEST_MICROS: u64 = 600_000_000;

/// Latencies in bounded memory: an HDR histogram of microseconds, three significant digits,
/// from 1 µs to 10 min (longer ones count as 10 min), about 160 KiB however many calls it
/// holds, where keeping every latency and sorting them grows without end.
#[derive(Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Latencies {
    /// An empty histogram.
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, LONGEST_MICROS, 3)
            .expect("1 us to 10 min at 3 significant digits are valid bounds");
        Self { histogram }
    }

    /// Counts one latency (rounded to the microsecond, at least 1 µs, at most 10 min).
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram
            .saturating_record(micros.clamp(1, LONGEST_MICROS));
    }

    /// Adds every latency of `other` (e.g. another task's) to these.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so the addition cannot fail.
        let _ = self.histogram.add(&other.histogram);
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

    /// The median; zero when empty.
    pub fn p50(&self) -> Duration {
        self.quantile(0.50).unwrap_or_default()
    }

    /// The 99th percentile; zero when empty.
    pub fn p99(&self) -> Duration {
        self.quantile(0.99).unwrap_or_default()
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
            self.max().unwrap_or_default().as_micros(),
            self.len()
        )
    }
}

impl fmt::Debug for Latencies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Latencies({self})")
    }
}

/// The `q`-quantile of `samples` (within 0.1 %), through a [`Latencies`]; `None` when there
/// are none.
pub fn quantile(samples: &[Duration], q: f64) -> Option<Duration> {
    let mut latencies = Latencies::new();
    for sample in samples {
        latencies.record(*sample);
    }
    latencies.quantile(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stay_the_same_size_however_many() {
        let mut latencies = Latencies::new();
        for i in 0..1_000_000u64 {
            latencies.record(Duration::from_micros(i % 50_000));
        }
        latencies.record(Duration::from_secs(3600));
        assert_eq!(latencies.len(), 1_000_001);
        let max = latencies.max().expect("a max").as_secs_f64();
        assert!((600.0..600.6).contains(&max), "capped at 10 min: {max} s");
        let p50 = latencies.p50().as_micros();
        assert!((24_900..=25_100).contains(&p50), "p50 {p50} us");
    }

    #[test]
    fn merged_count_both() {
        let mut one = Latencies::new();
        let mut other = Latencies::new();
        // Exact below 2,048 µs at three significant digits.
        one.record(Duration::from_micros(1_000));
        other.record(Duration::from_micros(2_000));
        one.merge(&other);
        assert_eq!(one.len(), 2);
        assert_eq!(one.max(), Some(Duration::from_micros(2_000)));
    }

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
    fn empty_has_no_quantile() {
        let latencies = Latencies::new();
        assert_eq!(latencies.quantile(0.5), None);
        assert_eq!(latencies.p99(), Duration::ZERO);
        assert_eq!(quantile(&[], 0.5), None);
    }
}
