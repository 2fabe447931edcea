//! The procedures the conformance cases call.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rpc_core::{Cancellation, RpcError};
use serde::{Deserialize, Serialize};

/// When a procedure ran, in microseconds since the Unix epoch, recorded inside it: the suite's
/// servers run in the test's process, so both ends read the same clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// When the procedure started.
    pub start_us: u64,
    /// When it returned.
    pub end_us: u64,
}

impl Span {
    /// Whether the two spans share any instant.
    pub fn overlaps(&self, other: &Span) -> bool {
        self.start_us < other.end_us && other.start_us < self.end_us
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What [`Suite::spin`] did under one tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spins {
    /// How many calls started their work (passed their first cancellation check).
    pub started: u32,
    /// How many stopped early because they were cancelled.
    pub stopped_early: u32,
}

/// What the suite's procedures record, shared by the handler and the test that started it
/// (the suite's servers run in the test's process).
#[derive(Debug, Default)]
pub struct Record {
    marks: Mutex<HashSet<String>>,
    spins: Mutex<HashMap<String, Spins>>,
    batches: Mutex<Vec<Vec<i64>>>,
}

impl Record {
    /// What [`Suite::spin`] did under `tag`, read directly: through the transport this
    /// question would wait in line behind the calls it asks about.
    pub fn spins(&self, tag: &str) -> Spins {
        let spins = self.spins.lock().unwrap_or_else(|e| e.into_inner());
        spins.get(tag).copied().unwrap_or_default()
    }

    /// The numbers of each batch [`Suite::square`] ran, in order.
    pub fn batches(&self) -> Vec<Vec<i64>> {
        self.batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The size of each batch [`Suite::square`] ran, in order.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.batches().iter().map(Vec::len).collect()
    }

    fn record_spin(&self, tag: &str, change: impl FnOnce(&mut Spins)) {
        let mut spins = self.spins.lock().unwrap_or_else(|e| e.into_inner());
        change(spins.entry(tag.to_string()).or_default());
    }
}

/// The suite's procedures, with what they record (each server has its own).
#[derive(Default)]
pub struct Suite {
    /// What the procedures recorded.
    pub record: Arc<Record>,
}

#[rpc_core::handler]
impl Suite {
    /// Returns its argument.
    pub fn echo(text: String) -> String {
        text
    }

    /// Returns its argument, from an `async fn`.
    pub async fn echo_async(text: String) -> String {
        tokio::task::yield_now().await;
        text
    }

    /// Adds two numbers (two parameters, for count and type errors).
    pub fn add(a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    /// Fails with `message`.
    pub fn fail(message: String) -> Result<(), String> {
        Err(message)
    }

    /// Panics with `message`.
    pub fn explode(message: String) {
        panic!("{message}");
    }

    /// Sleeps `ms` milliseconds on its worker and says when it ran.
    pub fn sleep(ms: u64) -> Span {
        let start_us = now_us();
        std::thread::sleep(Duration::from_millis(ms));
        Span {
            start_us,
            end_us: now_us(),
        }
    }

    /// Records that it ran with `tag`.
    pub fn mark(&self, tag: String) {
        let mut marks = self.record.marks.lock().unwrap_or_else(|e| e.into_inner());
        marks.insert(tag);
    }

    /// Whether [`Suite::mark`] ever ran with `tag` (an `async fn`: it needs no worker).
    pub async fn was_marked(&self, tag: String) -> bool {
        let marks = self.record.marks.lock().unwrap_or_else(|e| e.into_inner());
        marks.contains(&tag)
    }

    /// Busy on its worker for `ms` milliseconds, checking every millisecond whether it was
    /// cancelled and then stopping early; recorded under `tag`.
    ///
    /// A call cancelled before it starts its work records nothing: several cancellations
    /// arriving together reach the consumer one after the other, and a queued call may be
    /// handed to the worker just before its own cancellation lands; it then stops at its
    /// first check, having done nothing.
    pub fn spin(&self, tag: String, ms: u64, cancel: Cancellation) -> Result<u64, RpcError> {
        cancel.check()?;
        self.record.record_spin(&tag, |s| s.started += 1);
        let until = std::time::Instant::now() + Duration::from_millis(ms);
        while std::time::Instant::now() < until {
            if cancel.is_cancelled() {
                self.record.record_spin(&tag, |s| s.stopped_early += 1);
                return cancel.check().map(|()| 0);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(ms)
    }

    /// The square of each `n`, as a batch procedure (at most 4 at once); `n = 13` fails alone;
    /// a batch holding `n = -666` panics. Records the numbers of each batch it runs.
    #[batch(max = 4, param = "n")]
    pub fn square(&self, numbers: Vec<i64>) -> Vec<Result<i64, String>> {
        self.record
            .batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(numbers.clone());
        assert!(!numbers.contains(&-666), "the devil's number in a batch");
        // Long enough for calls made meanwhile to wait and form the next batch.
        std::thread::sleep(Duration::from_millis(2));
        numbers
            .into_iter()
            .map(|n| match n {
                13 => Err("unlucky".to_string()),
                n => Ok(n.wrapping_mul(n)),
            })
            .collect()
    }

    /// The length of `text` in bytes.
    pub fn length(text: String) -> u64 {
        text.len() as u64
    }
}

/// A name no other test in this run (or a concurrent run on the same broker) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{prefix}_{}_{}_{n}",
        std::process::id(),
        now_us() % 1_000_000_000
    )
}
