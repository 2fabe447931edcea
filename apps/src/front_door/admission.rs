//! [`Admission`]: at most `max_in_flight` calls run at once and at most `max_waiting` more wait
//! for a place; a request beyond that is refused at once instead of queued without end.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The producer's admission control for HTTP calls.
#[derive(Debug)]
pub struct Admission {
    running: Arc<Semaphore>,
    max_in_flight: usize,
    admitted: AtomicUsize,
    limit: usize,
    rejected: AtomicU64,
}

/// An admitted request: holds its place in flight or in the wait line until dropped.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
}

impl Admission {
    /// Room for `max_in_flight` calls running (at least 1) and `max_waiting` waiting.
    pub fn new(max_in_flight: usize, max_waiting: usize) -> Arc<Self> {
        let max_in_flight = max_in_flight.max(1);
        Arc::new(Self {
            running: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            admitted: AtomicUsize::new(0),
            limit: max_in_flight + max_waiting,
            rejected: AtomicU64::new(0),
        })
    }

    /// A ticket when there is room running or waiting; `None` (and one more rejection counted)
    /// when both are full.
    pub fn enter(self: &Arc<Self>) -> Option<Ticket> {
        let entered = self
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |admitted| {
                (admitted < self.limit).then_some(admitted + 1)
            })
            .is_ok();
        if entered {
            Some(Ticket {
                admission: self.clone(),
            })
        } else {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.running.available_permits()
    }

    /// Calls admitted and waiting for a place to run.
    pub fn waiting(&self) -> usize {
        self.admitted
            .load(Ordering::Acquire)
            .saturating_sub(self.in_flight())
    }

    /// Requests refused so far.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

impl Ticket {
    /// Waits for a place to run (first come, first served); the place is held as long as
    /// the returned permit.
    pub async fn run(&self) -> OwnedSemaphorePermit {
        self.admission
            .running
            .clone()
            .acquire_owned()
            .await
            .expect("the admission semaphore is never closed")
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_running_and_waiting_is_refused_until_a_place_frees() {
        let admission = Admission::new(2, 1);
        let a = admission.enter().expect("room");
        let b = admission.enter().expect("room");
        let c = admission.enter().expect("a place in line");
        assert!(admission.enter().is_none());
        assert_eq!(admission.rejected(), 1);
        let _ra = a.run().await;
        let _rb = b.run().await;
        assert_eq!((admission.in_flight(), admission.waiting()), (2, 1));
        let waiting = tokio::spawn(async move {
            let _permit = c.run().await;
        });
        drop(_ra);
        drop(a);
        waiting.await.expect("the waiting call ran");
        assert!(admission.enter().is_some(), "room again");
    }
}
