//! [`Admission`]: time-based admission control. At most `limit` calls run at once (by default
//! what the consumers can run, see [`FrontDoorConfig`](super::FrontDoorConfig)); the others wait
//! in one line, but never longer than the queue-time target (`max_queue_time`): a request that
//! would wait longer is refused at once, and one that has waited that long is refused then.
//!
//! The line is first come first served, and turns last come first served while it stands: when
//! its oldest waiter has been over half the target old at every place given out for
//! [`STANDING_FOR`], and meanwhile more requests came than it seated (by more than
//! [`GROWN_BY_PLACES`] times its places). It stops standing at the first place given out that
//! finds its oldest waiter young, unless its waiters, served in order, would not all have a
//! place within half the target: after a stall, the burst of requests it held back is still
//! served newest first. Under a steady overload a first-come line fills to the target, so every
//! call it admits has waited the whole target; served newest first, the calls it admits wait
//! about one run time, and the ones left at the back are refused when their target passes, as
//! they would have been anyway. A standing line also gives out fewer places if told to (see
//! [`Admission::set_limit`]): the front door then leaves out the places that keep a
//! consumer's pipeline full, whose calls would wait there behind another run, and gives each
//! one out only when a running call is due to end, so that the next call reaches the consumer
//! as it does: the consumer neither idles a round trip between calls nor holds a call behind a
//! whole run. The next end is expected one interval between ends after the last end, not a
//! hold after the running call got its place: a call given its place early holds it while it
//! waits at the consumer too, so its hold overstates its run. Such a place goes to a fresh
//! request: if the newest waiter has waited longer than the lead, the place is held until a
//! request comes, or until the running call is due to end, whichever is first. Under an
//! overload a request usually comes within the lead, and the call admitted then has waited for
//! nothing; given out at once, the place would seat the one left from the last arrivals, which
//! had waited most of a run. This is the adaptive LIFO of
//! Facebook's servers ("Fail at Scale", ACM Queue 13(8), 2015), with CoDel's target and
//! interval (Nichols and Jacobson, RFC 8289) telling a standing line from a passing one.
//!
//! A closed loop of clients, each sending its next request when its last is answered, keeps a
//! line that does not grow: one request comes for each one seated. Served first come first, it
//! seats every waiter in the same time, and while that is within the target it refuses none.
//! Newest first, it would leave its oldest waiters to be refused at the target, only for them
//! to come straight back; so such a line never stands, however old its waiters. (One whose wait
//! is over the target refuses waiters either way, and the refused count as growth. So does
//! one whose wait is at the target's edge, once a stall has a few of its waiters refused: the
//! growth is counted from when the line turned old.)
//!
//! Counting waiting calls, as a fixed wait line does, lets the time a call waits grow with the
//! size of the work (256 waiting F(90)s are 10 ms, 256 waiting F(100,000)s are 250 ms). Serving
//! systems bound the time instead: Triton's queue policy (`default_timeout_microseconds`,
//! `timeout_action: REJECT`), CoDel's target sojourn time. A newcomer's wait is estimated from
//! its place in line and how long a call holds a place (a moving average), so that the excess
//! of an overload is refused at the door instead of after waiting; the line's length is also
//! capped (`max_waiting`), which bounds the memory the waiting requests' bodies take.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// The weight of the newest call in the moving average of the time a call holds a place.
const SMOOTHING: f64 = 0.1;

/// A line whose oldest waiter has waited over this fraction of the target...
const STANDING_FRACTION: u32 = 2;

/// ... whenever a place was given out for this long stands, and is served newest first.
const STANDING_FOR: Duration = Duration::from_millis(20);

/// ... and grew meanwhile: more requests came than it seated, by more than this many times
/// its places.
const GROWN_BY_PLACES: u64 = 2;

/// How far over the target a newcomer's estimated wait must be for it to be refused at once.
const ESTIMATE_MARGIN: f64 = 2.0;

/// While the line stands, the next call is due to end one interval between ends after the
/// last one: a place held back (see [`Admission::set_limit`]) is given out up to this fraction
/// of that interval (the lead) before, so that its call reaches the consumer as the running one
/// ends, not a round trip later. It goes to a request that came within the lead; if none has,
/// it is held for the next one until the running call is due to end.
const EARLY_BY: f64 = 0.3;

/// The weight of the newest interval in the moving average of the time between two ends.
const INTERVAL_SMOOTHING: f64 = 0.1;

/// The producer's admission control for HTTP calls.
#[derive(Debug)]
pub struct Admission {
    line: Mutex<Line>,
    max_queue_time: Duration,
    max_waiting: usize,
    rejected: AtomicU64,
    /// The thread that gives the held-back places out early (see [`early_places`]), once
    /// there are any.
    early: OnceLock<std::thread::Thread>,
}

#[derive(Debug)]
struct Line {
    /// Calls holding a place now.
    holding: usize,
    /// Places.
    limit: usize,
    /// Places while the line stands (at most `limit`): without the places that only keep a
    /// consumer's pipeline full, whose calls wait there behind another run. Those are given
    /// out again, one each time a call is due to end.
    standing_limit: usize,
    /// Calls waiting (their tickets not yet dropped nor given a place).
    waiting: usize,
    /// Their channels and when they came, first come first; a channel whose ticket was
    /// dropped is skipped.
    waiters: VecDeque<(Instant, oneshot::Sender<Place>)>,
    /// The moving average of the time a call held its place, in seconds (0 before the first).
    hold: f64,
    /// Since when the oldest waiter has been over the standing fraction of the target old at
    /// every place given out (`None`: it was not at the last one).
    old_since: Option<Instant>,
    /// Requests that came while every place was taken (each waited or was refused at once),
    /// less the waiters given a place: what the line grew by, and refused or lost.
    excess: u64,
    /// `excess` when the oldest waiter became old.
    excess_when_old: u64,
    /// Whether the early-places thread sleeps until woken (it knows of no call due).
    early_asleep: bool,
    /// When a call last gave its place back.
    last_end: Option<Instant>,
    /// The moving average of the time between two ends while the consumers were busy from one
    /// to the next, in seconds (0 before the first).
    interval: f64,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Its estimated wait (seconds) was over the target.
    WouldWait(f64),
    /// The line is as long as `max_waiting`.
    LineFull(usize),
    /// It waited the whole target without getting a place.
    Waited(Duration),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::WouldWait(wait) => write!(
                f,
                "every place is taken and a new call would wait about {:.1} ms: try again shortly",
                wait * 1e3
            ),
            Refusal::LineFull(waiting) => write!(
                f,
                "every place is taken and {waiting} calls are waiting: try again shortly"
            ),
            Refusal::Waited(waited) => write!(
                f,
                "no place to run after waiting {:.1} ms: try again shortly",
                waited.as_secs_f64() * 1e3
            ),
        }
    }
}

/// An admitted request, in line for a place (or already given one).
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    entered: Instant,
    place: Option<oneshot::Receiver<Place>>,
    ready: Option<Place>,
}

/// A place to run; freed (and given to the next in line) when dropped.
#[derive(Debug)]
pub struct Place {
    admission: Arc<Admission>,
    since: Instant,
    armed: bool,
}

impl Admission {
    /// `limit` places (at least 1), a newcomer refused when it would wait over
    /// `max_queue_time`, at most `max_waiting` waiting.
    pub fn new(limit: usize, max_queue_time: Duration, max_waiting: usize) -> Arc<Self> {
        Arc::new(Self {
            line: Mutex::new(Line {
                holding: 0,
                limit: limit.max(1),
                standing_limit: limit.max(1),
                waiting: 0,
                waiters: VecDeque::new(),
                hold: 0.0,
                old_since: None,
                excess: 0,
                excess_when_old: 0,
                early_asleep: true,
                last_end: None,
                interval: 0.0,
            }),
            max_queue_time,
            max_waiting,
            rejected: AtomicU64::new(0),
            early: OnceLock::new(),
        })
    }

    /// A ticket in line (given a place at once when one is free), or why not (and one more
    /// rejection counted).
    ///
    /// # Errors
    /// [`Refusal::WouldWait`] or [`Refusal::LineFull`].
    pub fn enter(self: &Arc<Self>) -> Result<Ticket, Refusal> {
        let entered = Instant::now();
        let mut line = self.lock();
        if line.running() < line.limit && line.waiting == 0 {
            line.start();
            drop(line);
            return Ok(Ticket {
                admission: self.clone(),
                entered,
                place: None,
                ready: Some(self.place(entered)),
            });
        }
        line.excess += 1;
        if line.waiting >= self.max_waiting {
            let waiting = line.waiting;
            drop(line);
            return Err(self.refuse(Refusal::LineFull(waiting)));
        }
        // The estimate is refused on only when clearly over the target: a call held up by a
        // busy machine inflates the average for a while, and refusing on a wrong estimate
        // leaves places empty. A waiter that does not get a place in time is refused then.
        let wait = line.wait_behind(line.waiting + 1);
        if wait > ESTIMATE_MARGIN * self.max_queue_time.as_secs_f64() {
            drop(line);
            return Err(self.refuse(Refusal::WouldWait(wait)));
        }
        // Channels of tickets dropped while waiting are skipped when a place frees; a line
        // that frees none for long is swept here so that they do not pile up.
        if line.waiters.len() > 2 * line.waiting + 16 {
            line.waiters.retain(|(_, w)| !w.is_closed());
        }
        let (tx, rx) = oneshot::channel();
        line.waiters.push_back((entered, tx));
        line.waiting += 1;
        // A standing line may hold a place that is due for a newcomer like this one.
        if line.running() < line.limit && line.stands(entered) {
            self.hand_over(&mut line);
        }
        Ok(Ticket {
            admission: self.clone(),
            entered,
            place: Some(rx),
            ready: None,
        })
    }

    /// Sets the number of places (at least 1), and how many of them are given out while the
    /// line stands (at least 1, at most `limit`); waiting calls get the new ones at once.
    ///
    /// The places held back while the line stands are given out early instead: one each time
    /// a call is due to end (the average interval between two ends after the last end, less
    /// up to three tenths of it, the lead), so that the next call reaches the consumer as that
    /// one ends. Each goes to a request that came within the lead, or is held for the next one
    /// until the call is due to end. A thread of the admission's own wakes for them, as the
    /// runtime's timers are a millisecond coarse.
    pub fn set_limit(self: &Arc<Self>, limit: usize, while_standing: usize) {
        let mut line = self.lock();
        line.limit = limit.max(1);
        line.standing_limit = while_standing.clamp(1, line.limit);
        if line.standing_limit < line.limit && self.early.get().is_none() {
            let admission = Arc::downgrade(self);
            let spawned = std::thread::Builder::new()
                .name("early-places".into())
                .spawn(move || early_places(admission));
            match spawned {
                Ok(thread) => {
                    let _ = self.early.set(thread.thread().clone());
                }
                Err(error) => tracing::warn!(%error, "no thread for early places"),
            }
        }
        self.hand_over(&mut line);
    }

    /// The number of places, and how many of them are given out while the line stands.
    pub fn limit(&self) -> (usize, usize) {
        let line = self.lock();
        (line.limit, line.standing_limit)
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.lock().running()
    }

    /// Calls admitted and waiting for a place to run.
    pub fn waiting(&self) -> usize {
        self.lock().waiting
    }

    /// Requests refused so far.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    fn refuse(&self, why: Refusal) -> Refusal {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        why
    }

    fn place(self: &Arc<Self>, since: Instant) -> Place {
        Place {
            admission: self.clone(),
            since,
            armed: true,
        }
    }

    /// Gives free places to live waiters: the first while the line drains, the last while it
    /// stands (see the module's documentation).
    fn hand_over(self: &Arc<Self>, line: &mut Line) {
        let old = self.max_queue_time / STANDING_FRACTION;
        while line.running() < line.limit {
            while line.waiters.front().is_some_and(|(_, w)| w.is_closed()) {
                line.waiters.pop_front();
            }
            let Some((entered, _)) = line.waiters.front() else {
                line.old_since = None;
                return;
            };
            let now = Instant::now();
            if now.duration_since(*entered) > old {
                line.turned_old(now);
            } else {
                // Young waiters that first come first served would not all seat within the same
                // age (the burst of requests a stall held back) keep a standing line standing.
                let burst = line.stands(now) && line.wait_behind(line.waiting) > old.as_secs_f64();
                if !burst {
                    line.old_since = None;
                }
            }
            let standing = line.stands(now);
            if standing {
                while line.waiters.back().is_some_and(|(_, w)| w.is_closed()) {
                    line.waiters.pop_back();
                }
            }
            if standing && !line.seats_while_standing(now) {
                self.wake_early(line);
                return;
            }
            let waiter = if standing {
                line.waiters.pop_back()
            } else {
                line.waiters.pop_front()
            };
            let Some((_, waiter)) = waiter else {
                return;
            };
            match waiter.send(self.place(now)) {
                Ok(()) => {
                    line.start();
                    line.waiting -= 1;
                    line.excess = line.excess.saturating_sub(1);
                    if standing {
                        self.wake_early(line);
                    }
                }
                // Its ticket is gone and counted itself out of the line: the place goes to the
                // next one, without this lock taken twice.
                Err(mut place) => place.armed = false,
            }
        }
    }

    /// Wakes the thread that gives places out early if it sleeps until woken: the line
    /// stands, and a call started or all the standing places are taken.
    fn wake_early(&self, line: &mut Line) {
        if !line.early_asleep {
            return;
        }
        if let Some(thread) = self.early.get() {
            line.early_asleep = false;
            thread.unpark();
        }
    }

    /// Gives out the places of the running calls due to end now, and says when to look again:
    /// when the next one is due, or, for one due and held for a newcomer, when its running call
    /// is due to end (`None`: none will be before the line changes).
    fn give_early_places(self: &Arc<Self>) -> Option<Instant> {
        let mut line = self.lock();
        self.hand_over(&mut line);
        let now = Instant::now();
        let next = if !line.stands(now) || line.waiting == 0 || line.running() >= line.limit {
            None
        } else {
            line.next_early_place()
                .map(|due| if due <= now { due + line.lead() } else { due })
        };
        line.early_asleep = next.is_none();
        next
    }

    fn lock(&self) -> MutexGuard<'_, Line> {
        self.line
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Line {
    /// Whether the line stands at `now`: its oldest waiter has been old at every place given
    /// out for [`STANDING_FOR`], and meanwhile more requests came than it seated, by more
    /// than [`GROWN_BY_PLACES`] times its places.
    ///
    /// A line that does not grow is a closed loop of clients, each sending its next request
    /// when the last is answered (or refused): however long it waits, served first come first
    /// it seats every waiter in the same time, refusing none. Served newest first, it would
    /// leave its oldest waiters to be refused at the target, only for them to come straight
    /// back. Under an overload the line grows by the excess (or refuses it), so it stands.
    fn stands(&self, now: Instant) -> bool {
        let grown = self.excess.saturating_sub(self.excess_when_old);
        self.old_since
            .is_some_and(|since| now.duration_since(since) >= STANDING_FOR)
            && grown > GROWN_BY_PLACES * self.limit as u64
    }

    /// The oldest waiter is old at a place given out at `now`: since then, if it was not at
    /// the last.
    fn turned_old(&mut self, now: Instant) {
        if self.old_since.is_none() {
            self.old_since = Some(now);
            self.excess_when_old = self.excess;
        }
    }

    /// How long, in seconds, the last of `waiters` would wait for a place, served first come
    /// first at every place (estimated from the average hold).
    fn wait_behind(&self, waiters: usize) -> f64 {
        waiters as f64 * self.hold / self.limit as f64
    }

    /// Calls holding a place now.
    fn running(&self) -> usize {
        self.holding
    }

    /// A call got its place.
    fn start(&mut self) {
        self.holding += 1;
    }

    /// The call that got its place at `since` gave it back at `now`: its hold joins the
    /// average. The time since the last end is an interval between ends if the consumers were
    /// busy throughout: this call had its place before the last one ended, so it was waiting
    /// at its consumer or running.
    fn end(&mut self, since: Instant, now: Instant) {
        self.holding = self.holding.saturating_sub(1);
        let held = now.saturating_duration_since(since).as_secs_f64();
        self.hold = moving_average(self.hold, held, SMOOTHING);
        if let Some(last) = self.last_end.filter(|&last| since < last) {
            let gap = now.saturating_duration_since(last).as_secs_f64();
            self.interval = moving_average(self.interval, gap, INTERVAL_SMOOTHING);
        }
        self.last_end = Some(now);
    }

    /// The interval between two ends, in seconds: as measured, else from the average hold
    /// (0 before any call ended).
    fn interval(&self) -> f64 {
        if self.interval > 0.0 {
            self.interval
        } else {
            self.hold / self.standing_limit as f64
        }
    }

    /// How early a place held back is given out: [`EARLY_BY`] of the interval between ends.
    fn lead(&self) -> Duration {
        Duration::from_secs_f64(EARLY_BY * self.interval())
    }

    /// When the next place held back is due: the next end expected (one interval after the
    /// last end for each place already given out early, and one more), less the lead.
    fn next_early_place(&self) -> Option<Instant> {
        let last = self.last_end?;
        let interval = self.interval();
        if interval <= 0.0 {
            return None;
        }
        let early = self.running().saturating_sub(self.standing_limit) as f64;
        let after = interval * (early + 1.0 - EARLY_BY);
        Some(last + Duration::from_secs_f64(after))
    }

    /// Whether a standing line gives out a place at `now` (the caller keeps within `limit`):
    /// one of its standing places is free, or the next place held back is due and either its
    /// newest waiter came within the lead or the call it was held back for is due to end.
    fn seats_while_standing(&self, now: Instant) -> bool {
        if self.running() < self.standing_limit {
            return true;
        }
        let Some(due) = self.next_early_place() else {
            return false;
        };
        let lead = self.lead();
        let fresh = self
            .waiters
            .back()
            .is_some_and(|(entered, _)| now.saturating_duration_since(*entered) <= lead);
        due <= now && (fresh || now >= due + lead)
    }
}

/// `mean` moved towards `sample` by `weight` (the sample itself when `mean` is 0: none yet).
fn moving_average(mean: f64, sample: f64, weight: f64) -> f64 {
    if mean == 0.0 {
        sample
    } else {
        mean + weight * (sample - mean)
    }
}

/// The thread that gives the held-back places out as running calls become due to end, for as
/// long as the admission exists. It sleeps until the next is due, or until woken by a call
/// started or a line begun to stand.
fn early_places(admission: Weak<Admission>) {
    loop {
        let next = match admission.upgrade() {
            Some(admission) => admission.give_early_places(),
            None => return,
        };
        match next {
            Some(due) => std::thread::park_timeout(due.saturating_duration_since(Instant::now())),
            None => std::thread::park(),
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        // Its thread ends on waking.
        if let Some(thread) = self.early.get() {
            thread.unpark();
        }
    }
}

impl Ticket {
    /// Waits for a place to run, at most until the queue-time target has passed since the
    /// request was admitted. Dropped while it waits (its client went away, or its own timeout
    /// passed), the ticket leaves the line, as a ticket dropped before it waits does.
    ///
    /// # Errors
    /// [`Refusal::Waited`] when no place came in time (one more rejection counted).
    pub async fn run(mut self) -> Result<Place, Refusal> {
        if let Some(place) = self.ready.take() {
            return Ok(place);
        }
        let until = tokio::time::Instant::from_std(self.entered + self.admission.max_queue_time);
        // The channel stays in the ticket while it waits, so that a wait dropped halfway
        // leaves the line in `Drop`: a waiter left counted would keep every later request in
        // line, and once the running calls ended no place would be freed to serve them.
        let Some(rx) = self.place.as_mut() else {
            return Err(Refusal::Waited(self.entered.elapsed()));
        };
        if let Ok(Ok(place)) = tokio::time::timeout_at(until, rx).await {
            self.place = None;
            return Ok(place);
        }
        // Not in time: a place given at the last moment is taken rather than wasted.
        if let Some(place) = self.leave() {
            return Ok(place);
        }
        Err(self
            .admission
            .refuse(Refusal::Waited(self.entered.elapsed())))
    }

    /// Takes the ticket out of the line, if it is still in it: a place given to it in the
    /// meantime is returned (dropped, it frees itself), and once its channel is closed none
    /// can come; without one, the ticket is counted out of the line.
    fn leave(&mut self) -> Option<Place> {
        let mut rx = self.place.take()?;
        rx.close();
        let given = rx.try_recv().ok();
        if given.is_none() {
            let mut line = self.admission.lock();
            line.waiting = line.waiting.saturating_sub(1);
        }
        given
    }
}

impl Drop for Ticket {
    /// Still in line (the client went away while waiting, or its wait was dropped): out of it.
    /// A place given to it in the meantime is dropped here, and so freed.
    fn drop(&mut self) {
        self.leave();
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let now = Instant::now();
        let admission = self.admission.clone();
        let mut line = admission.lock();
        line.end(self.since, now);
        admission.hand_over(&mut line);
    }
}

#[cfg(test)]
mod tests;
