//! [`Pipeline`]: how many requests of one queue a consumer holds beyond those its workers run,
//! sized by Little's law from what the consumer measures.
//!
//! A worker that finishes a request acks it; the broker then sends the next one, which takes a
//! broker round trip to arrive. For the worker not to wait, the consumer must hold about
//! `places x round trip / run time` requests beyond the `places` it runs (Little's law: what
//! is in flight = rate x time in flight). Echo-sized calls (tens of µs) against a round trip of
//! a millisecond want dozens; heavy tasks (a neural pass, 10 ms and more) want less than one,
//! and then the configured minimum (2 by default) is kept, so that heavy requests stay in the
//! queue for other consumers. Holding about a round trip's worth of work is not hoarding:
//! another consumer would need that round trip too to be sent it.
//!
//! Both times are measured: the run time of a request (from its start to its result, timed
//! where it runs: a synchronous one on its worker thread, see `rpc_core::Start::ran_for`), as
//! the least of the last [`WINDOW`] to 2 x [`WINDOW`] (what a call itself costs; the mean
//! grows with the load a deep pipeline brings, waits on a busy runtime included, and would
//! shrink the pipeline that caused it, as BBR takes the least round trip for the same
//! reason), and the round trip from an ack sent while the consumer was full (its prefetch all used) to
//! the next delivery's arrival. Both are moving averages.
//! The pipeline grows when the wanted size is at least twice the current one, and shrinks
//! when it is at most a quarter (a deep pipeline loads the consumer, which lengthens each
//! call's dispatch-to-result time a little: it must not shrink the pipeline back at once),
//! not more often than every [`SETTLE`], because each change is a new consumer (`basic.qos` then `basic.consume`; a per-consumer prefetch is fixed when the
//! consumer starts).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a pipeline keeps its size after a change before it may change again: the round
/// trips measured at the new size must replace those of the old one.
pub(crate) const SETTLE: Duration = Duration::from_millis(200);

/// How many run times make a window; the run time is the least of the last one or two.
pub(crate) const WINDOW: u32 = 32;

/// The weight of a new sample in the moving average.
const ALPHA: f64 = 0.125;

/// A round trip measured above this is an idle queue, not the broker: not a sample.
const LONGEST_ROUND_TRIP: Duration = Duration::from_millis(100);

/// The prefetch pipeline of one request queue's consumer, and what sizes it.
#[derive(Debug)]
pub(crate) struct Pipeline {
    /// Requests this queue's workers may run at once (workers x batch size).
    places: u16,
    /// The smallest and largest pipeline.
    min: u16,
    max: u16,
    /// The current consumer's pipeline: its prefetch is `places + current`.
    current: u16,
    /// Which consumer is current; deliveries of earlier ones do not count.
    generation: u64,
    /// Unacked deliveries of the current consumer.
    held: u32,
    /// When each ack sent while the current consumer was full went out: each is answered by
    /// the next delivery, whose arrival gives a round trip.
    freed: VecDeque<Instant>,
    /// The least run time of the current window and of the last one, in seconds; how many
    /// run times the current window holds.
    run_time: Option<f64>,
    last_window: Option<f64>,
    window: u32,
    /// The moving average of the round trip, in seconds.
    round_trip: Option<f64>,
    /// When the pipeline last changed; `None` while a change is under way.
    changed_at: Option<Instant>,
}

impl Pipeline {
    /// A pipeline of `min` for a queue with `places` worker places, growing up to `max`.
    pub(crate) fn new(places: u16, min: u16, max: u16) -> Self {
        Self {
            places: places.max(1),
            min,
            max: max.max(min),
            current: min,
            generation: 0,
            held: 0,
            freed: VecDeque::new(),
            run_time: None,
            last_window: None,
            window: 0,
            round_trip: None,
            changed_at: Some(Instant::now()),
        }
    }

    /// The prefetch of a consumer started now: worker places plus the wanted pipeline.
    pub(crate) fn prefetch(&self) -> u16 {
        self.places.saturating_add(self.current)
    }

    /// The current consumer's generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The current pipeline (beyond the worker places).
    pub(crate) fn current(&self) -> u16 {
        self.current
    }

    /// A new consumer of `generation` started with `prefetch`: it holds nothing yet.
    pub(crate) fn consuming(&mut self, generation: u64, prefetch: u16) {
        self.generation = generation;
        self.current = prefetch.saturating_sub(self.places);
        self.held = 0;
        self.freed.clear();
        self.changed_at = Some(Instant::now());
    }

    /// A change of pipeline failed (the channel went away): another may be tried.
    pub(crate) fn change_failed(&mut self) {
        self.changed_at = Some(Instant::now());
    }

    /// A delivery of consumer `generation` arrived just now.
    pub(crate) fn delivered(&mut self, generation: u64) {
        if generation != self.generation {
            return;
        }
        self.held += 1;
        // Acks older than any round trip were not answered (the queue had run empty): they
        // are no sample and must not pair with later deliveries.
        while self
            .freed
            .front()
            .is_some_and(|freed| freed.elapsed() >= LONGEST_ROUND_TRIP)
        {
            self.freed.pop_front();
        }
        if let Some(freed) = self.freed.pop_front() {
            average(&mut self.round_trip, freed.elapsed());
        }
    }

    /// A delivery of consumer `generation` was acked (or rejected) just now.
    pub(crate) fn acked(&mut self, generation: u64) {
        if generation != self.generation {
            return;
        }
        let full = self.held >= u32::from(self.prefetch());
        self.held = self.held.saturating_sub(1);
        if full {
            // Bounded: no more acks than the prefetch can be waiting for their delivery.
            if self.freed.len() >= usize::from(self.prefetch()) {
                self.freed.pop_front();
            }
            self.freed.push_back(Instant::now());
        }
        // Not cleared when nothing is held any more: cheap requests are all run and acked
        // before the broker's answer to the first ack arrives, and the deliveries that follow
        // answer those acks. An ack no delivery answers (the queue was empty) is dropped when
        // it has waited longer than a round trip can take (see `delivered`).
    }

    /// A request took `elapsed` from its dispatch to its result.
    pub(crate) fn ran(&mut self, elapsed: Duration) {
        let elapsed = elapsed.as_secs_f64();
        self.run_time = Some(self.run_time.map_or(elapsed, |least| least.min(elapsed)));
        self.window += 1;
        if self.window >= WINDOW {
            self.last_window = self.run_time.take();
            self.window = 0;
        }
    }

    /// The least run time of the last one or two windows.
    fn least_run_time(&self) -> Option<f64> {
        match (self.run_time, self.last_window) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The pipeline Little's law asks for now: `places x round trip / run time`, within
    /// `min..=max`; the current one while either time is unmeasured.
    pub(crate) fn wanted(&self) -> u16 {
        let (Some(run_time), Some(round_trip)) = (self.least_run_time(), self.round_trip) else {
            return self.current;
        };
        let wanted = f64::from(self.places) * round_trip / run_time.max(1e-7);
        // f64 to u16 saturates; NaN is 0.
        (wanted.ceil() as u16).clamp(self.min, self.max)
    }

    /// The new pipeline when it should change now (twice or a quarter of the current one,
    /// settled since the last change); marks a change under way.
    pub(crate) fn change(&mut self) -> Option<u16> {
        let settled = self.changed_at?.elapsed() >= SETTLE;
        let wanted = self.wanted();
        let current = self.current.max(1);
        let worth = wanted >= current.saturating_mul(2) || wanted <= current / 4;
        if !settled || !worth || wanted == self.current {
            return None;
        }
        self.changed_at = None;
        Some(wanted)
    }
}

fn average(mean: &mut Option<f64>, sample: Duration) {
    let sample = sample.as_secs_f64();
    *mean = Some(match *mean {
        Some(mean) => mean + ALPHA * (sample - mean),
        None => sample,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipeline whose consumer is full, then acks once and waits `round_trip` for the next
    /// delivery, `rounds` times, each request running `run_time`.
    fn measured(places: u16, run_time: Duration, round_trip: Duration, rounds: usize) -> Pipeline {
        let mut pipeline = Pipeline::new(places, 2, 128);
        pipeline.consuming(1, pipeline.prefetch());
        for _ in 0..pipeline.prefetch() {
            pipeline.delivered(1);
        }
        for _ in 0..rounds {
            pipeline.ran(run_time);
            pipeline.acked(1);
            std::thread::sleep(round_trip);
            pipeline.delivered(1);
        }
        pipeline
    }

    #[test]
    fn cheap_calls_pipeline_deeply() {
        let pipeline = measured(1, Duration::from_micros(50), Duration::from_millis(2), 8);
        // About 2 ms / 50 µs = 40, more with the sleeps' overshoot.
        assert!(pipeline.wanted() >= 40, "{}", pipeline.wanted());
    }

    #[test]
    fn heavy_calls_keep_the_minimum() {
        let pipeline = measured(1, Duration::from_millis(100), Duration::from_millis(2), 4);
        assert_eq!(pipeline.wanted(), 2);
    }

    #[test]
    fn the_pipeline_is_bounded() {
        let pipeline = measured(4, Duration::from_nanos(10), Duration::from_millis(2), 4);
        assert_eq!(pipeline.wanted(), 128);
    }

    /// A pipeline of 2 for one worker place whose consumer holds its whole prefetch (3).
    fn full() -> Pipeline {
        let mut pipeline = Pipeline::new(1, 2, 128);
        pipeline.consuming(1, 3);
        for _ in 0..3 {
            pipeline.delivered(1);
        }
        pipeline
    }

    #[test]
    fn an_idle_queue_is_no_round_trip() {
        let mut pipeline = full();
        pipeline.ran(Duration::from_micros(10));
        pipeline.acked(1);
        std::thread::sleep(LONGEST_ROUND_TRIP);
        pipeline.delivered(1);
        assert_eq!(pipeline.round_trip, None);
        assert_eq!(pipeline.wanted(), 2, "unmeasured: unchanged");
    }

    #[test]
    fn acks_answered_after_the_consumer_emptied_are_round_trips() {
        // Cheap requests: all three run and are acked before the broker's answer to the
        // first ack arrives; the next deliveries answer those acks.
        let mut pipeline = full();
        for _ in 0..3 {
            pipeline.ran(Duration::from_micros(10));
            pipeline.acked(1);
        }
        std::thread::sleep(Duration::from_millis(2));
        pipeline.delivered(1);
        let round_trip = pipeline.round_trip.expect("a round trip");
        assert!((0.002..0.05).contains(&round_trip), "{round_trip}");
        assert!(pipeline.wanted() >= 100, "{}", pipeline.wanted());
    }

    #[test]
    fn a_pipeline_shrinks_only_to_a_quarter() {
        let mut pipeline = Pipeline::new(1, 2, 128);
        pipeline.consuming(1, 1 + 64);
        pipeline.round_trip = Some(0.001);
        pipeline.last_window = Some(0.001 / 20.0);
        pipeline.changed_at = Some(Instant::now() - SETTLE);
        assert_eq!(pipeline.change(), None, "20 of 64: kept");
        pipeline.last_window = Some(0.001 / 16.0);
        assert_eq!(pipeline.change(), Some(16));
    }

    #[test]
    fn the_run_time_is_the_least_of_a_window_or_two() {
        let mut pipeline = Pipeline::new(1, 2, 128);
        pipeline.ran(Duration::from_millis(5));
        pipeline.ran(Duration::from_millis(1));
        pipeline.ran(Duration::from_millis(9));
        assert_eq!(pipeline.least_run_time(), Some(0.001));
        for _ in 0..2 * WINDOW {
            pipeline.ran(Duration::from_millis(100));
        }
        assert_eq!(
            pipeline.least_run_time(),
            Some(0.1),
            "heavy since two windows"
        );
    }

    #[test]
    fn an_earlier_consumer_does_not_count() {
        let mut pipeline = Pipeline::new(1, 2, 128);
        pipeline.consuming(2, 3);
        pipeline.delivered(1);
        pipeline.acked(1);
        assert_eq!(pipeline.held, 0);
        assert!(pipeline.freed.is_empty());
    }

    #[test]
    fn a_change_waits_for_the_last_to_settle() {
        let mut pipeline = measured(1, Duration::from_micros(50), Duration::from_millis(2), 8);
        pipeline.changed_at = Some(Instant::now());
        assert_eq!(pipeline.change(), None, "not settled");
        pipeline.changed_at = Some(Instant::now() - SETTLE);
        let wanted = pipeline.change().expect("grows");
        assert!(wanted >= 40);
        assert_eq!(pipeline.change(), None, "under way");
        pipeline.consuming(2, 1 + wanted);
        assert_eq!(pipeline.current(), wanted);
    }
}
