//! [`Timeline`]: calls per second and their p50/p99 over the last minutes, for the dashboard;
//! a fixed number of seconds kept, so its memory never grows.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::stats::Latencies;

/// How many whole seconds a [`Timeline`] keeps (five minutes).
pub const TIMELINE_SECONDS: usize = 300;

/// One finished second of calls.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Second {
    /// When it began, in seconds since the Unix epoch.
    pub t: u64,
    /// Calls answered with a result in that second.
    pub ok: u64,
    /// Calls that failed in that second.
    pub failed: u64,
    /// The median latency of its calls, in milliseconds; `None` without calls.
    pub p50_ms: Option<f64>,
    /// The 99th percentile latency of its calls, in milliseconds; `None` without calls.
    pub p99_ms: Option<f64>,
}

/// The last [`TIMELINE_SECONDS`] seconds of calls, one [`Second`] each, and the one going on.
#[derive(Debug)]
pub struct Timeline {
    started: Instant,
    started_unix: u64,
    finished: VecDeque<Second>,
    index: u64,
    ok: u64,
    failed: u64,
    latencies: Latencies,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Timeline {
    /// An empty timeline whose first second begins now.
    pub fn new() -> Self {
        let started_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        Self {
            started: Instant::now(),
            started_unix,
            finished: VecDeque::with_capacity(TIMELINE_SECONDS),
            index: 0,
            ok: 0,
            failed: 0,
            latencies: Latencies::new(),
        }
    }

    /// Counts one call that finished at `now`.
    pub fn record(&mut self, now: Instant, latency: Duration, ok: bool) {
        self.roll(now);
        if ok {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
        self.latencies.record(latency);
    }

    /// The finished seconds up to `now`, oldest first (at most [`TIMELINE_SECONDS`]).
    pub fn recent(&mut self, now: Instant) -> Vec<Second> {
        self.roll(now);
        self.finished.iter().cloned().collect()
    }

    /// Closes every second that ended before `now`; a gap longer than the window is skipped
    /// in one step.
    fn roll(&mut self, now: Instant) {
        let index = now.saturating_duration_since(self.started).as_secs();
        if index <= self.index {
            return;
        }
        self.close_current();
        let gap = index - self.index - 1;
        let idle = gap.min(TIMELINE_SECONDS as u64);
        for skipped in (index - idle)..index {
            self.push(Second {
                t: self.started_unix + skipped,
                ok: 0,
                failed: 0,
                p50_ms: None,
                p99_ms: None,
            });
        }
        self.index = index;
    }

    fn close_current(&mut self) {
        let ms = |q| self.latencies.quantile(q).map(|d| d.as_secs_f64() * 1e3);
        let second = Second {
            t: self.started_unix + self.index,
            ok: self.ok,
            failed: self.failed,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
        };
        self.push(second);
        self.ok = 0;
        self.failed = 0;
        self.latencies.clear();
    }

    fn push(&mut self, second: Second) {
        if self.finished.len() == TIMELINE_SECONDS {
            self.finished.pop_front();
        }
        self.finished.push_back(second);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_closed_in_order_and_the_window_is_bounded() {
        let mut timeline = Timeline::new();
        let start = timeline.started;
        let at = |ms: u64| start + Duration::from_millis(ms);
        timeline.record(at(100), Duration::from_millis(2), true);
        timeline.record(at(200), Duration::from_millis(4), false);
        timeline.record(at(2_500), Duration::from_millis(8), true);
        let recent = timeline.recent(at(3_100));
        let counts: Vec<_> = recent.iter().map(|s| (s.ok, s.failed)).collect();
        assert_eq!(counts, [(1, 1), (0, 0), (1, 0)]);
        assert_eq!(recent[1].p50_ms, None);
        let p99 = recent[2].p99_ms.expect("a p99");
        assert!((p99 - 8.0).abs() < 0.01, "{p99}");

        let later = timeline.recent(at(3_600_000));
        assert_eq!(later.len(), TIMELINE_SECONDS);
        assert!(later.iter().all(|s| s.ok + s.failed == 0));
        assert_eq!(
            later.last().map(|s| s.t),
            Some(timeline.started_unix + 3_599)
        );
    }
}
