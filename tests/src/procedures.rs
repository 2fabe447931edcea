//! The procedures the conformance cases call.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

static MARKS: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// The suite's procedures.
pub struct Suite;

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
    pub fn mark(tag: String) {
        let mut marks = MARKS.lock().unwrap_or_else(|e| e.into_inner());
        marks.get_or_insert_with(HashSet::new).insert(tag);
    }

    /// Whether [`Suite::mark`] ever ran with `tag`.
    pub fn was_marked(tag: String) -> bool {
        let marks = MARKS.lock().unwrap_or_else(|e| e.into_inner());
        marks.as_ref().is_some_and(|m| m.contains(&tag))
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
