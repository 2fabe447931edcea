//! [`Acks`]: a consumer channel's acknowledgements, sent in batches with `multiple`.
//!
//! A request is acked only after its reply is published (see `server.rs`). Acking each one
//! alone costs a frame per request, and on a quorum queue a command through its Raft log per
//! frame. The delivery tags of a channel are consecutive (1, 2, 3, ...), and `basic.ack` with
//! `multiple` of tag T settles every delivery of the channel up to T still unsettled; so:
//!
//! - a run of consecutive tags, from the lowest one not yet settled, whose requests are all
//!   answered (or were settled some other way, such as a reject) is acked with one
//!   `basic.ack` of the run's last answered tag, `multiple` set. The run never passes a tag
//!   not seen yet (a delivery still on its way, which `multiple` would otherwise ack unrun) nor
//!   one still running;
//! - an answered tag after such a gap is acked alone, at once: a slow request never holds up
//!   the acks of the others (which would hold their consumers' prefetch).
//!
//! The acks are written by one task per channel ([`Acks::run`]), woken by each answer:
//! batches form by themselves under load (the answers that come while it writes go in its
//! next batch), and one request at a time is one ack each, as before. One writer at a time
//! (the task, or [`Acks::write`] when the consumer stops), in order: a `multiple` ack that
//! overtook an earlier one would leave that one's tag unknown to the broker, an error that
//! closes the channel. A request's own task only marks it answered, so that none is held up
//! writing others' acks.
//!
//! A tag that never arrives (none should: every delivery of the channel comes through its
//! consumers' streams) would stop every later run; past [`MAX_TRACKED`] tags waiting behind
//! a gap, the channel's acks go one by one for the rest of its life, and nothing is tracked.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use lapin::options::{BasicAckOptions, BasicRejectOptions};
use lapin::Channel;
use tokio::sync::Notify;

/// The most tags tracked behind a gap before acks go one by one (far above any prefetch).
pub(crate) const MAX_TRACKED: usize = 1 << 14;

/// The acknowledgements of one consumer channel.
#[derive(Debug)]
pub(crate) struct Acks {
    channel: Channel,
    state: Mutex<State>,
    /// Wakes the writing task: something was answered.
    answered: Notify,
    /// Held while a batch is taken and written: one writer at a time, in order.
    writing: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct State {
    /// Every tag below this one is settled (tags start at 1).
    settled_below: u64,
    /// The tags seen at or above `settled_below`, and where each stands.
    tags: BTreeMap<u64, Tag>,
    /// False once a gap held [`MAX_TRACKED`] tags: then `tags` stays empty and `alone` holds
    /// the answered tags, each acked alone.
    batching: bool,
    alone: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tag {
    /// Delivered, its reply not published yet.
    Running,
    /// Its reply published: to ack.
    Answered,
    /// Acked or rejected already.
    Settled,
}

/// What to ack now: the end of a run (`multiple`), and tags after a gap (each alone).
#[derive(Debug, Default, PartialEq)]
struct Batch {
    multiple: Option<u64>,
    alone: Vec<u64>,
}

impl Acks {
    /// The acknowledgements of `channel`, on which nothing was delivered yet.
    pub(crate) fn new(channel: Channel) -> Arc<Self> {
        Arc::new(Self {
            channel,
            state: Mutex::new(State::new()),
            answered: Notify::new(),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    /// The delivery of `tag` arrived.
    pub(crate) fn delivered(&self, tag: u64) {
        let mut state = self.lock();
        if state.batching {
            state.tags.insert(tag, Tag::Running);
        }
    }

    /// Rejects the delivery of `tag` without requeueing it (dead-lettered), alone. Marked
    /// settled only once sent: a `multiple` ack written before would otherwise ack it, and the
    /// reject of a tag the broker no longer knows closes the channel.
    pub(crate) async fn reject(&self, tag: u64) {
        let rejected = self
            .channel
            .basic_reject(tag, BasicRejectOptions { requeue: false })
            .await;
        if let Err(e) = rejected {
            tracing::warn!(tag, error = %e, "could not reject; the broker will redeliver");
        }
        self.lock().set(tag, Tag::Settled);
    }

    /// The reply to `tag` was published: its ack goes in the writing task's next batch.
    pub(crate) fn answered(&self, tag: u64) {
        self.lock().set(tag, Tag::Answered);
        self.answered.notify_one();
    }

    /// The channel's writing task: writes the acks of what was answered, as answers come.
    /// Runs until dropped (with its consumer's session).
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            self.answered.notified().await;
            self.write().await;
        }
    }

    /// Writes the acks of everything answered so far (when the consumer stops, after its
    /// last requests are answered).
    pub(crate) async fn write(&self) {
        let _writing = self.writing.lock().await;
        loop {
            let batch = self.lock().take_batch();
            if batch == Batch::default() {
                return;
            }
            self.send(batch).await;
        }
    }

    async fn send(&self, batch: Batch) {
        let acks = batch
            .multiple
            .map(|tag| (tag, true))
            .into_iter()
            .chain(batch.alone.into_iter().map(|tag| (tag, false)));
        for (tag, multiple) in acks {
            if let Err(e) = self
                .channel
                .basic_ack(tag, BasicAckOptions { multiple })
                .await
            {
                // The channel is gone: the broker redelivers what it had not settled.
                tracing::warn!(tag, multiple, error = %e, "could not ack; the broker will redeliver");
                return;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn new() -> Self {
        Self {
            settled_below: 1,
            tags: BTreeMap::new(),
            batching: true,
            alone: Vec::new(),
        }
    }

    fn set(&mut self, tag: u64, to: Tag) {
        if !self.batching {
            if to == Tag::Answered {
                self.alone.push(tag);
            }
        } else if tag >= self.settled_below {
            self.tags.insert(tag, to);
        }
    }

    /// What to ack now; those tags count as settled from here on.
    fn take_batch(&mut self) -> Batch {
        let mut batch = Batch {
            multiple: None,
            alone: std::mem::take(&mut self.alone),
        };
        if !self.batching {
            return batch;
        }
        // The run of consecutive settled or answered tags from the lowest unsettled one.
        while let Some(&tag) = self.tags.get(&self.settled_below) {
            if tag == Tag::Running {
                break;
            }
            if tag == Tag::Answered {
                batch.multiple = Some(self.settled_below);
            }
            self.tags.remove(&self.settled_below);
            self.settled_below += 1;
        }
        // Answered tags after the gap, each alone.
        for (&tag, state) in self.tags.iter_mut() {
            if *state == Tag::Answered {
                *state = Tag::Settled;
                batch.alone.push(tag);
            }
        }
        if self.tags.len() > MAX_TRACKED {
            tracing::warn!(
                missing = self.settled_below,
                "a delivery tag never arrived: acks go one by one on this channel from now on"
            );
            self.batching = false;
            self.tags.clear();
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(tags: &[(u64, Tag)]) -> State {
        let mut state = State::new();
        for &(tag, to) in tags {
            state.tags.insert(tag, to);
        }
        state
    }

    fn batch(multiple: Option<u64>, alone: &[u64]) -> Batch {
        Batch {
            multiple,
            alone: alone.to_vec(),
        }
    }

    use Tag::{Answered, Running, Settled};

    #[test]
    fn a_run_of_answered_tags_is_one_multiple_ack() {
        let mut s = state(&[(1, Answered), (2, Answered), (3, Answered), (4, Running)]);
        assert_eq!(s.take_batch(), batch(Some(3), &[]));
        assert_eq!(s.settled_below, 4);
        assert_eq!(s.take_batch(), Batch::default());
    }

    #[test]
    fn the_run_passes_rejected_tags_and_ends_on_the_last_answered() {
        let mut s = state(&[(1, Answered), (2, Settled), (3, Answered), (4, Settled)]);
        assert_eq!(s.take_batch(), batch(Some(3), &[]));
        assert_eq!(s.settled_below, 5);
    }

    #[test]
    fn answered_tags_after_a_running_one_are_acked_alone() {
        let mut s = state(&[(1, Running), (2, Answered), (3, Answered)]);
        assert_eq!(s.take_batch(), batch(None, &[2, 3]));
        // Once the first is answered, the run passes the two already acked.
        s.set(1, Answered);
        assert_eq!(s.take_batch(), batch(Some(1), &[]));
        assert_eq!((s.settled_below, s.tags.len()), (4, 0));
    }

    #[test]
    fn the_run_never_passes_a_tag_not_seen_yet() {
        // Tag 2 is on its way (another consumer's stream): `multiple` of 3 would ack it.
        let mut s = state(&[(1, Answered), (3, Answered)]);
        assert_eq!(s.take_batch(), batch(Some(1), &[3]));
        assert_eq!(s.settled_below, 2);
    }

    #[test]
    fn a_gap_that_never_fills_ends_batching_and_tracking() {
        let mut s = state(&[(1, Running)]);
        for tag in 2..(MAX_TRACKED as u64 + 3) {
            s.tags.insert(tag, Answered);
        }
        assert_eq!(s.take_batch().alone.len(), MAX_TRACKED + 1);
        assert!(!s.batching && s.tags.is_empty());
        s.set(1, Answered);
        s.set(99_999, Answered);
        assert_eq!(s.take_batch(), batch(None, &[1, 99_999]));
    }

    #[test]
    fn a_tag_settled_before_is_not_seen_again() {
        let mut s = state(&[(1, Answered)]);
        s.take_batch();
        s.set(1, Answered);
        assert_eq!(s.take_batch(), Batch::default());
    }
}
