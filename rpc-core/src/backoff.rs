//! [`backoff`]: the waits between reconnection attempts, the same for every transport.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The waits between attempts to reach a peer that is away: doubling from `min` to `max`, each
/// cut by a random part of up to a half, so that clients restarted together do not retry in
/// step. Endless: take from it for as long as the peer stays away.
///
/// Built on the `backon` crate, which adds its jitter (up to the wait itself) on top of the
/// wait: it is given half the bounds, so each wait falls in [half, all) of the doubling
/// sequence and never past `max`.
///
/// ```
/// use std::time::Duration;
///
/// let waits: Vec<Duration> = rpc_core::backoff(Duration::from_millis(100), Duration::from_secs(1))
///     .take(6)
///     .collect();
/// assert!(waits[0] >= Duration::from_millis(50) && waits[0] < Duration::from_millis(100));
/// assert!(waits.iter().all(|wait| *wait < Duration::from_secs(1)));
/// ```
pub fn backoff(min: Duration, max: Duration) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::new()
        .with_min_delay(min / 2)
        .with_max_delay(max.max(min) / 2)
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_with_jitter_and_stay_under_the_maximum() {
        let waits: Vec<Duration> = backoff(Duration::from_millis(100), Duration::from_millis(1600))
            .take(8)
            .collect();
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
