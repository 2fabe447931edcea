//! [`BatchCall`]: one call of a batch procedure, run by a worker together with the calls of the
//! same procedure already waiting.
//!
//! A procedure declared `#[batch(max = N)]` takes a `Vec` of its argument and returns a `Vec`
//! of results, one per element, in order. Callers still call it one at a time; when a worker
//! frees up it takes the first waiting call of such a procedure and up to `N - 1` more calls of
//! the same procedure waiting behind it (from any connection), skipping those whose caller gave
//! up or whose deadline passed, and runs them as one invocation. Nothing waits for a batch to
//! fill: a call alone runs at once as a batch of one.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::{CallResult, Encoding, RpcError};

/// One decoded call of a batch: its encoding (each caller gets its answer in its own) and its
/// argument.
pub(crate) type BatchInput = (Encoding, Box<dyn Any + Send>);

/// Runs a batch: one result per input, in order.
pub(crate) type BatchFn = Arc<dyn Fn(Vec<BatchInput>) -> Vec<CallResult> + Send + Sync>;

/// One call of a batch procedure, its argument decoded, waiting to be grouped with others.
pub struct BatchCall {
    pub(crate) max: usize,
    pub(crate) input: BatchInput,
    pub(crate) run: BatchFn,
}

impl fmt::Debug for BatchCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchCall").field("max", &self.max).finish()
    }
}

impl BatchCall {
    /// A call with argument `value`, answered in `encoding`, of a batch procedure that takes at
    /// most `max` calls at once: `procedure` runs a batch of arguments, `finish` encodes each
    /// of its outputs in its caller's encoding.
    pub fn new<T, O, P, F>(
        max: usize,
        value: T,
        encoding: Encoding,
        procedure: P,
        finish: F,
    ) -> Self
    where
        T: Send + 'static,
        P: Fn(Vec<T>) -> Vec<O> + Send + Sync + 'static,
        F: Fn(Encoding, O) -> CallResult + Send + Sync + 'static,
    {
        let run: BatchFn = Arc::new(move |inputs: Vec<BatchInput>| {
            let count = inputs.len();
            let mut encodings = Vec::with_capacity(count);
            let mut values = Vec::with_capacity(count);
            for (encoding, input) in inputs {
                // Every input of one batch comes from one procedure, so it has its type.
                if let Ok(value) = input.downcast::<T>() {
                    encodings.push(encoding);
                    values.push(*value);
                }
            }
            if values.len() != count {
                return internal_error(count, "a batch input of another type");
            }
            let outputs = procedure(values);
            if outputs.len() != count {
                let got = outputs.len();
                return internal_error(
                    count,
                    &format!("the batch procedure returned {got} results for {count} calls"),
                );
            }
            encodings
                .into_iter()
                .zip(outputs)
                .map(|(encoding, output)| finish(encoding, output))
                .collect()
        });
        Self {
            max: max.max(1),
            input: (encoding, Box::new(value)),
            run,
        }
    }
}

fn internal_error(count: usize, why: &str) -> Vec<CallResult> {
    vec![Err(RpcError::Failed(why.to_string())); count]
}
