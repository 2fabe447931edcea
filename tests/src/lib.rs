//! The transport-conformance suite: one set of cases, written once, run against every
//! transport.
//!
//! A transport joins the suite with a [`Fixture`] (start a server for a registry, hand out a
//! client transport, stop) and one line in a test file:
//!
//! ```text
//! rpc_tests::conformance_suite!(MyTransportFixture);
//! ```
//!
//! which expands to one `#[test]` per case, so a failure names both the case and the
//! transport (`tests/memory.rs` -> `memory::round_trip_json`).
//!
//! # Layout
//! - [`fixture`]: the [`Fixture`] trait and the [`Server`] a case runs against.
//! - [`procedures`]: the handler the cases call (echo, add, fail, panic, sleep, ...).
//! - [`cases`]: the cases, each an `async fn` generic over the fixture.

#![deny(missing_docs)]

pub mod cases;
pub mod fixture;
pub mod procedures;

pub use fixture::{Fixture, Server};

/// Expands to one test per conformance case against the fixture type `$fixture`.
///
/// Each test runs on a multi-threaded runtime with two workers, the machines' core count.
#[macro_export]
macro_rules! conformance_suite {
    ($fixture:ty) => {
        $crate::conformance_suite!(@cases $fixture;
            round_trip_bincode,
            round_trip_json,
            round_trip_text,
            async_procedure,
            many_concurrent_calls,
            unknown_procedure,
            wrong_argument_count,
            wrong_argument_type,
            procedure_error_reaches_caller,
            panic_then_next_call_works,
            deadline_exceeded_on_time,
            expired_call_is_not_run,
            one_worker_never_overlaps,
            two_workers_overlap,
            one_mib_argument,
            running_call_stops_at_its_deadline,
            batch_results_matched_to_callers,
            batch_panic_fails_its_batch_only,
            batch_expired_call_is_skipped,
        );
    };
    // The cases for transports that carry a caller's cancellation to the consumer.
    ($fixture:ty, cancellation) => {
        $crate::conformance_suite!($fixture);
        $crate::conformance_suite!(@cases $fixture; dropped_calls_are_cancelled);
    };
    (@cases $fixture:ty; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                ::tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a tokio runtime")
                    .block_on($crate::cases::$case::<$fixture>());
            }
        )*
    };
}
