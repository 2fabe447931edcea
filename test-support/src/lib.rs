//! Helpers that the tests and benchmarks of several crates need, written once.
//!
//! Nothing here is a mock: the helpers drive the real broker (`rabbitmqctl`), read the real
//! kernel's view of a process (`/proc`), and summarise real latencies.
//!
//! ```
//! use std::time::Duration;
//! use test_support::{procfs, runtime, Latencies};
//!
//! let runtime = runtime(2);
//! let mut latencies = Latencies::new();
//! runtime.block_on(async {
//!     for ms in [1, 2, 3] {
//!         let started = std::time::Instant::now();
//!         tokio::time::sleep(Duration::from_millis(ms)).await;
//!         latencies.record(started.elapsed());
//!     }
//! });
//! assert_eq!(latencies.len(), 3);
//! assert!(latencies.max() >= Some(Duration::from_millis(3)));
//! assert!(procfs::resident_memory(std::process::id()).is_some());
//! ```
//!
//! # Layout
//! - [`rabbitmq`] (`rabbitmq.rs`): `rabbitmqctl`, its JSON output, and [`BrokerStopped`], a
//!   guard that stops the broker's application and starts it again however the test ends.
//! - [`procfs`] (`procfs.rs`): CPU time of a process or of one of its threads, resident memory.
//! - [`runtime`], [`current_thread_runtime`] (`runtime.rs`): the tokio runtimes tests and
//!   benches run on, multi-threaded and current-thread.
//! - [`Latencies`]: the `latencies` crate's, re-exported: an HDR histogram of latencies.
//! - [`pki`] (`pki.rs`): a CA and the certificates it signs, made at test time (rcgen).
//! - [`stdout_of`] (`command.rs`): a script's or a peer's output, failing loudly.
//! - [`Cases`] (`cases.rs`): which of a benchmark's measurements to run.

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod cases;
mod command;
pub mod pki;
pub mod procfs;
pub mod rabbitmq;
mod runtime;

pub use cases::Cases;
pub use command::stdout_of;
pub use latencies::Latencies;
pub use rabbitmq::BrokerStopped;
pub use runtime::{current_thread_runtime, runtime};
