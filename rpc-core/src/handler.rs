//! [`Handler`]: a named set of procedures, as `#[handler]` implements it for a type.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{BatchCall, Cancellation, Encoding, RpcError};

/// The encoded result of one procedure call, or why there is none.
pub type CallResult = Result<Vec<u8>, RpcError>;

/// A procedure's description: its method name and parameter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Procedure {
    /// The method name, the part after the dot in `handler.method`.
    pub method: &'static str,
    /// The parameter names, in order: the keys of the JSON encoding.
    pub params: &'static [&'static str],
    /// How many calls it takes at once: its `#[batch(max = N)]`, 1 for any other procedure.
    /// Transports that fetch requests ahead (AMQP's prefetch) let this many per worker wait.
    pub batch: usize,
}

/// A call whose arguments decoded, ready to run.
///
/// Decoding happens before a worker is taken, so bad arguments never wait for a free worker.
pub enum Invocation {
    /// A synchronous procedure: run on a blocking thread, holding a worker.
    Blocking(Box<dyn FnOnce() -> CallResult + Send + 'static>),
    /// An `async` procedure: run on the runtime.
    Async(Pin<Box<dyn Future<Output = CallResult> + Send + 'static>>),
    /// One call of a batch procedure (`#[batch(max = N)]`): run on a blocking thread together
    /// with the calls of the same procedure waiting behind it.
    Batch(BatchCall),
}

impl fmt::Debug for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invocation::Blocking(_) => "Invocation::Blocking",
            Invocation::Async(_) => "Invocation::Async",
            Invocation::Batch(_) => "Invocation::Batch",
        })
    }
}

/// A set of procedures under one handler name: `fibonacci_generator` serves
/// `fibonacci_generator.calculate`.
///
/// Implemented by `#[rpc_core::handler]` on an `impl` block; implement it by hand only for
/// procedures whose set is known at run time.
pub trait Handler: Send + Sync + 'static {
    /// The handler name the procedures are served under unless registered under another.
    fn name(&self) -> &'static str;

    /// The procedures this handler serves.
    fn procedures(&self) -> &'static [Procedure];

    /// Decodes `args` for `method` and returns the call ready to run. The invocation holds
    /// its own reference to the handler (procedures taking `&self` run on it later, on another
    /// thread) and `cancel`, which procedures that observe cancellation are given.
    ///
    /// # Errors
    /// [`RpcError::UnknownProcedure`] for a method this handler does not have,
    /// [`RpcError::BadArguments`] when the arguments do not decode.
    fn invoke(
        self: Arc<Self>,
        method: &str,
        encoding: Encoding,
        args: &[u8],
        cancel: &Cancellation,
    ) -> Result<Invocation, RpcError>;
}
