//! The consumer-side metrics the registry records, through the `metrics` facade: nothing is
//! kept unless the application installs a recorder (the consumer's `--metrics-listen` installs
//! a Prometheus exporter), and then the recorder holds one series per procedure and outcome.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `rpc_consumer_calls_total` | counter | `procedure`, `outcome` (`ok` or the error kind) |
//! | `rpc_consumer_run_seconds` | histogram | `procedure`: time on a worker (a batch: the whole batch) |
//! | `rpc_consumer_wait_seconds` | histogram | `procedure`: time a call waited for a worker |
//! | `rpc_consumer_workers_busy` | gauge | workers running a procedure now |
//! | `rpc_consumer_batch_size` | histogram | `procedure`: calls per batch of a batch procedure |

use std::sync::Arc;
use std::time::Duration;

use crate::handler::CallResult;

// Labels are the procedure's shared name: a reference count, not a string copied per call.

/// A call answered, by outcome.
pub(crate) fn called(procedure: &Arc<str>, result: &CallResult) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(err) => err.kind().as_str(),
    };
    metrics::counter!("rpc_consumer_calls_total", "procedure" => Arc::clone(procedure), "outcome" => outcome)
        .increment(1);
}

/// Time a procedure (or a batch) spent on a worker, or an `async` one ran.
pub(crate) fn ran(procedure: &Arc<str>, took: Duration) {
    metrics::histogram!("rpc_consumer_run_seconds", "procedure" => Arc::clone(procedure))
        .record(took.as_secs_f64());
}

/// Time a call waited for a worker.
pub(crate) fn waited(procedure: &Arc<str>, took: Duration) {
    metrics::histogram!("rpc_consumer_wait_seconds", "procedure" => Arc::clone(procedure))
        .record(took.as_secs_f64());
}

/// A worker started (`1.0`) or finished (`-1.0`) running a procedure.
pub(crate) fn busy(change: f64) {
    metrics::gauge!("rpc_consumer_workers_busy").increment(change);
}

/// A batch procedure ran `size` calls at once.
pub(crate) fn batch(procedure: &Arc<str>, size: usize) {
    metrics::histogram!("rpc_consumer_batch_size", "procedure" => Arc::clone(procedure))
        .record(size as f64);
}
