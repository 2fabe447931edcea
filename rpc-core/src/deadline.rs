//! [`Deadline`]: the instant a call's caller stops waiting, carried once with the call.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::time::Instant;

/// The longest timeout honoured; a larger one (or `Duration::MAX`) is capped so that adding it
/// to the clock cannot overflow. A year.
const FARTHEST: Duration = Duration::from_secs(365 * 24 * 3600);

/// When a call's caller stops waiting.
///
/// It is set once, where the call is made, and travels with the [`crate::Call`]. On every
/// wire it crosses as the time *remaining* (serde writes a `Duration`), and the receiving side
/// turns that back into an instant on its own clock, so no two clocks need to agree. Only the
/// caller's [`crate::Client`] and the consumer's [`crate::Registry`] enforce it; transports set
/// no timers of their own for it.
///
/// ```
/// use std::time::Duration;
/// use rpc_core::Deadline;
///
/// let deadline = Deadline::after(Duration::from_secs(5));
/// assert!(deadline.remaining() <= Duration::from_secs(5));
/// assert!(!deadline.has_passed());
/// assert!(Deadline::after(Duration::ZERO).has_passed());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(Instant);

impl Deadline {
    /// The instant `timeout` from now (capped at a year).
    pub fn after(timeout: Duration) -> Self {
        Self(Instant::now() + timeout.min(FARTHEST))
    }

    /// The deadline at `instant`.
    pub fn at(instant: Instant) -> Self {
        Self(instant)
    }

    /// The instant itself, for `tokio::time::timeout_at` and `sleep_until`.
    pub fn instant(self) -> Instant {
        self.0
    }

    /// The time left, zero once it has passed.
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn has_passed(self) -> bool {
        self.passed_at(Instant::now())
    }

    /// Whether the deadline had passed at `now`: for a caller that already read the clock
    /// (a read per check adds up on a call's path).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rpc_core::Deadline;
    /// use tokio::time::Instant;
    ///
    /// let now = Instant::now();
    /// let deadline = Deadline::at(now + Duration::from_secs(1));
    /// assert!(!deadline.passed_at(now));
    /// assert!(deadline.passed_at(now + Duration::from_secs(1)));
    /// ```
    pub fn passed_at(self, now: Instant) -> bool {
        now >= self.0
    }
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Deadline(in {:?})", self.remaining())
    }
}

impl Serialize for Deadline {
    /// Written as the remaining `Duration`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.remaining().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Deadline {
    /// Read as a remaining `Duration`, counted from now.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Duration::deserialize(deserializer).map(Deadline::after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absurd_timeout_is_capped_not_overflowed() {
        let deadline = Deadline::after(Duration::MAX);
        assert!(deadline.remaining() <= FARTHEST);
        assert!(deadline.remaining() > FARTHEST - Duration::from_secs(60));
    }

    #[test]
    fn it_travels_as_the_remaining_duration() {
        let deadline = Deadline::after(Duration::from_secs(10));
        let bytes = bincode::serialize(&deadline).expect("serializes");
        let remaining: Duration = bincode::deserialize(&bytes).expect("a duration");
        assert!(remaining <= Duration::from_secs(10) && remaining > Duration::from_secs(9));
        let back: Deadline = bincode::deserialize(&bytes).expect("a deadline");
        assert!(back.remaining() <= remaining);
    }
}
