//! [`Windows`]: how many calls of each procedure a consumer may be sent beyond its workers,
//! learned from how long that procedure's calls take.
//!
//! A consumer that is sent only its workers' worth of calls waits a network round trip
//! between two tasks; cheap calls (tens of µs) then leave it idle most of the time, and need
//! dozens in flight to keep it busy. Heavy calls (milliseconds to seconds) need none: sending
//! more of them than a consumer can start only hoards them there while another consumer may
//! be free. So the window is per procedure (a run time is a property of the procedure: a
//! heavy procedure never inherits the deep window of a cheap one), and bounded in time rather
//! than in count: it starts at `queued_per_consumer` (the floor), grows by one each time a
//! call is answered within `pipeline_budget` of taking its place, up to
//! `max_queued_per_consumer`, and halves (not below the floor) each time one takes longer.
//! A consumer thus holds more than its workers plus the floor only while the calls come back
//! within the budget, which bounds the queued work it holds to about that much time.
//!
//! Only procedures whose window is above the floor are remembered, at most
//! [`MAX_PROCEDURES`] of them: beyond that, new names keep the floor (no per-call data kept
//! for ever, whatever names callers use).

use std::collections::HashMap;
use std::time::Duration;

use crate::config::TcpTransportConfig;

/// The most procedures whose window is remembered; others keep the floor.
pub(crate) const MAX_PROCEDURES: usize = 1024;

/// The learned window of each procedure.
#[derive(Debug)]
pub(crate) struct Windows {
    floor: usize,
    ceiling: usize,
    budget: Duration,
    /// The procedures whose window is above the floor, and that window.
    extra: HashMap<String, usize>,
}

impl Windows {
    /// Windows per `config`: from `queued_per_consumer` to `max_queued_per_consumer` (at
    /// least the floor), within `pipeline_budget`.
    pub(crate) fn new(config: &TcpTransportConfig) -> Self {
        Self {
            floor: config.queued_per_consumer,
            ceiling: config
                .max_queued_per_consumer
                .max(config.queued_per_consumer),
            budget: config.pipeline_budget,
            extra: HashMap::new(),
        }
    }

    /// Calls of `procedure` a consumer may hold beyond its workers now.
    pub(crate) fn extra(&self, procedure: &str) -> usize {
        self.extra.get(procedure).copied().unwrap_or(self.floor)
    }

    /// A call of `procedure` was answered `took` after it took its place.
    pub(crate) fn answered(&mut self, procedure: &str, took: Duration) {
        match took < self.budget {
            true => self.grow(procedure),
            false => self.shrink(procedure),
        }
    }

    /// A call of `procedure` gave its place up unanswered (dropped: its deadline passed or its
    /// caller went) `held` after taking it: past the budget, that is a slow call too.
    pub(crate) fn abandoned(&mut self, procedure: &str, held: Duration) {
        if held >= self.budget {
            self.shrink(procedure);
        }
    }

    fn grow(&mut self, procedure: &str) {
        if let Some(extra) = self.extra.get_mut(procedure) {
            *extra = (*extra + 1).min(self.ceiling);
        } else if self.ceiling > self.floor && self.extra.len() < MAX_PROCEDURES {
            self.extra.insert(procedure.to_owned(), self.floor + 1);
        }
    }

    fn shrink(&mut self, procedure: &str) {
        let Some(extra) = self.extra.get_mut(procedure) else {
            return;
        };
        *extra /= 2;
        if *extra <= self.floor {
            self.extra.remove(procedure);
        }
    }

    /// Procedures remembered (those above the floor).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.extra.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Duration = Duration::from_micros(100);
    const SLOW: Duration = Duration::from_secs(1);

    fn windows() -> Windows {
        Windows::new(&TcpTransportConfig::default())
    }

    #[test]
    fn fast_answers_grow_the_window_to_the_ceiling() {
        let mut windows = windows();
        assert_eq!(windows.extra("echo"), 2);
        windows.answered("echo", FAST);
        assert_eq!(windows.extra("echo"), 3);
        for _ in 0..200 {
            windows.answered("echo", FAST);
        }
        assert_eq!(windows.extra("echo"), 64);
    }

    #[test]
    fn a_slow_answer_halves_it_down_to_the_floor() {
        let mut windows = windows();
        for _ in 0..62 {
            windows.answered("echo", FAST);
        }
        windows.answered("echo", SLOW);
        assert_eq!(windows.extra("echo"), 32);
        for _ in 0..10 {
            windows.answered("echo", SLOW);
        }
        assert_eq!(windows.extra("echo"), 2);
        assert_eq!(windows.remembered(), 0, "back at the floor: forgotten");
    }

    #[test]
    fn each_procedure_has_its_own_window() {
        let mut windows = windows();
        for _ in 0..62 {
            windows.answered("echo", FAST);
        }
        windows.answered("heavy", SLOW);
        assert_eq!(windows.extra("heavy"), 2);
        assert_eq!(windows.extra("echo"), 64);
    }

    #[test]
    fn an_abandoned_call_past_the_budget_halves_it() {
        let mut windows = windows();
        for _ in 0..62 {
            windows.answered("echo", FAST);
        }
        windows.abandoned("echo", FAST);
        assert_eq!(windows.extra("echo"), 64);
        windows.abandoned("echo", SLOW);
        assert_eq!(windows.extra("echo"), 32);
    }

    #[test]
    fn the_procedures_remembered_are_bounded() {
        let mut windows = windows();
        for i in 0..MAX_PROCEDURES + 10 {
            windows.answered(&format!("p{i}"), FAST);
        }
        assert_eq!(windows.remembered(), MAX_PROCEDURES);
        let late = format!("p{}", MAX_PROCEDURES + 1);
        assert_eq!(windows.extra(&late), 2, "beyond the cap: the floor");
    }

    #[test]
    fn a_ceiling_below_the_floor_is_the_floor() {
        let config = TcpTransportConfig {
            queued_per_consumer: 8,
            max_queued_per_consumer: 4,
            ..TcpTransportConfig::default()
        };
        let mut windows = Windows::new(&config);
        windows.answered("echo", FAST);
        assert_eq!(windows.extra("echo"), 8);
        assert_eq!(windows.remembered(), 0);
    }
}
