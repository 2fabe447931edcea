//! The vocabulary of the rpc framework: remote procedure calls over pluggable transports.
//!
//! A consumer registers handlers (types whose `pub fn`s are procedures) in a [`Registry`] and
//! serves it over a transport; a producer calls those procedures through a [`Transport`],
//! usually with the typed client that `#[handler]` generates. This crate knows no network: the
//! TCP and AMQP transports live in crates of their own, and the in-memory transport here
//! ([`memory`]) runs both halves in one process, for tests and embedding.
//!
//! ```
//! use rpc_core::{memory, Registry, RpcError};
//!
//! /// Arithmetic on request.
//! pub struct Calculator;
//!
//! #[rpc_core::handler]
//! impl Calculator {
//!     /// Divides `a` by `b`.
//!     pub fn divide(a: i64, b: i64) -> Result<i64, String> {
//!         a.checked_div(b).ok_or_else(|| "division by zero".to_string())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let mut registry = Registry::new();
//! registry.register(Calculator);
//! let (transport, _server) = memory::spawn(registry);
//!
//! let calculator = CalculatorClient::new(transport);
//! assert_eq!(calculator.divide(7, 2).await, Ok(3));
//! assert_eq!(calculator.divide(1, 0).await, Err(RpcError::Failed("division by zero".into())));
//! # }
//! ```
//!
//! # Layout
//! - [`handler`](macro@handler): the attribute that turns an `impl` block into procedures.
//! - [`Handler`], [`Procedure`], [`Invocation`] (`handler.rs`): what the attribute implements.
//! - [`Registry`] (`registry.rs`): the handlers a consumer serves; runs synchronous calls on
//!   its `workers` threads (`workers.rs`), enforcing deadlines and catching panics, and
//!   emits the consumer's metrics (`metrics.rs`).
//! - [`BatchCall`] (`batch.rs`): one call of a `#[batch(max = N)]` procedure, run together
//!   with the calls of the same procedure waiting behind it.
//! - [`Deadline`] (`deadline.rs`): when a call stops being worth answering, set once;
//!   [`Cancellation`] (`cancellation.rs`): what a synchronous procedure checks to stop early;
//!   [`Start`] (`start.rs`): when a call started, and its transport taking it back before.
//! - [`Transport`] (`transport.rs`): the client half every transport implements.
//! - [`Client`] (`client.rs`): calls over any transport, with the deadline enforced once.
//! - [`Call`], [`Request`], [`Reply`] (`envelope.rs`): what travels.
//! - [`Encoding`] (`encoding.rs`): bincode, JSON and text, and the result codecs;
//!   [`args`]: argument decoding; [`text`]: the seed's command line.
//! - [`RpcError`] (`error.rs`): every way a call fails, as data that crosses the wire.
//! - [`ServerTask`] (`server_task.rs`): a server half running in the background, stopped
//!   gracefully or on drop; every transport's convenience wrapper uses it.
//! - [`backoff`] (`backoff.rs`): the jittered exponential backoff of every transport's
//!   reconnection.
//! - [`memory`]: the in-memory transport.

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod args;
mod backoff;
mod batch;
mod cancellation;
mod client;
mod deadline;
pub mod encoding;
mod envelope;
mod error;
mod handler;
pub mod memory;
mod metrics;
mod registry;
mod server_task;
mod start;
pub mod text;
mod transport;
mod wakes;
mod workers;

pub use args::Argument;
pub use backoff::backoff;
pub use batch::BatchCall;
pub use cancellation::Cancellation;
pub use client::Client;
pub use deadline::Deadline;
pub use encoding::Encoding;
pub use envelope::{Call, Reply, Request, DEFAULT_TIMEOUT};
pub use error::{ErrorKind, RpcError};
pub use handler::{CallResult, Handler, Invocation, Procedure};
pub use registry::{Registry, DEFAULT_WORKERS};
pub use server_task::ServerTask;
pub use start::Start;
pub use transport::{Answer, Transport};
pub use wakes::{wake_once, WakeOnce};

/// The largest message any transport carries by default: 16 MiB, for a TCP frame's body and
/// an AMQP request's body alike. Each transport's configuration can change its own.
pub const DEFAULT_MAX_MESSAGE: usize = 16 << 20;

/// Turns every `pub fn` of an `impl` block into a procedure `handler.method`, implements
/// [`Handler`] for the type, and generates a typed client `<Type>Client`.
///
/// - The handler name is the type's name in snake_case (`FibonacciGenerator` serves
///   `fibonacci_generator.*`), or `#[handler(name = "...")]`.
/// - Procedures are methods taking `&self`, so a handler owns its state (a model, a pool, a
///   counter behind an atomic) as tarpc servers do, or associated functions (the seed's
///   `@staticmethod`). `&mut self` is refused: calls run side by side on several workers, so
///   mutable state goes behind interior mutability. Parameters are owned types that implement
///   [`Argument`] (serde and `FromStr`). A synchronous procedure runs on one of the
///   registry's worker threads; an `async` one on the runtime.
/// - A parameter of type [`Cancellation`] is not an argument: the registry passes the call's
///   cancellation, which fires when the caller gives up or the deadline passes, so that long
///   synchronous work can stop early. The generated client does not have it.
/// - `#[batch(max = N)]` (optionally `param = "name"`) on `fn(&self, items: Vec<T>) -> Vec<R>`
///   makes a **batch procedure**: callers still call it with one `T` (named `name`, by default
///   the `Vec` parameter's name) and get one `R`; the registry runs the calls already waiting
///   (up to `N`, from every connection) as one invocation, without ever waiting for a batch
///   to fill. Each caller gets its own element of the returned `Vec` (in order; a `Vec` of
///   another length fails the whole batch), its own error (`R` may be a `Result`), its own
///   deadline (a call that expired or was cancelled is left out before the batch runs). A panic
///   fails every call of that batch with [`RpcError::Panicked`]; the next batch runs as usual.
/// - They return a value, or a `Result<T, E>`: an `E` that is an [`RpcError`] is passed on as
///   it is (so a procedure can answer [`RpcError::BadArguments`]); any other `E: Display`
///   becomes [`RpcError::Failed`] with its text.
/// - Arguments decode from bincode (a tuple), JSON (an object keyed by parameter name) and text
///   (tokens parsed with `FromStr`, a final `String` taking the rest of the line).
/// - Private functions in the block stay ordinary helpers.
///
/// The generated `<Type>Client` has one `async fn` per procedure with the same parameters,
/// returning `Result<T, RpcError>`; `named` points it at a handler registered under another
/// name and `with_timeout` changes its calls' timeout.
///
/// ```
/// use rpc_core::RpcError;
///
/// pub struct FibonacciGenerator;
///
/// #[rpc_core::handler]
/// impl FibonacciGenerator {
///     /// The n-th Fibonacci number, while it fits in a u64.
///     pub fn calculate(n: u32) -> Result<u64, RpcError> {
///         if n > 93 {
///             return Err(RpcError::BadArguments("n must be at most 93".into()));
///         }
///         Ok(Self::iterate(n))
///     }
///
///     fn iterate(n: u32) -> u64 {
///         (0..n).fold((0u64, 1u64), |(a, b), _| (b, a + b)).0
///     }
/// }
/// ```
pub use rpc_core_macros::handler;

/// The README's examples, compiled and run as doc tests so that they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// What the code generated by `#[handler]` calls; not part of the public API.
#[doc(hidden)]
pub mod __private {
    use std::fmt::Display;

    use serde::Serialize;

    pub use crate::args::Arguments;
    use crate::{CallResult, Encoding, RpcError};

    /// Encodes a procedure's successful value.
    pub fn finish<T: Serialize + ?Sized>(encoding: Encoding, value: &T) -> CallResult {
        crate::encoding::encode_result(encoding, value)
    }

    /// Appends one argument to a bincode tuple: a tuple's encoding is its elements' in order.
    pub fn encode_argument<T: crate::Argument>(
        buffer: &mut Vec<u8>,
        value: &T,
    ) -> Result<(), RpcError> {
        use bincode::Options;
        crate::encoding::bincode_options()
            .serialize_into(buffer, value)
            .map_err(|e| RpcError::BadArguments(format!("could not encode an argument: {e}")))
    }

    /// Wraps a procedure's error for the choice below, made at the generated call site where
    /// its type is concrete: an [`RpcError`] passes through, anything `Display` becomes
    /// [`RpcError::Failed`].
    pub struct ErrorWrap<E>(pub E);

    /// Chosen first (no auto-ref needed) when the error already is an [`RpcError`].
    pub trait ExactRpcError {
        /// The error as it is.
        fn to_rpc_error(&self) -> RpcError;
    }

    impl ExactRpcError for ErrorWrap<RpcError> {
        fn to_rpc_error(&self) -> RpcError {
            self.0.clone()
        }
    }

    /// Chosen otherwise, through one more auto-ref.
    pub trait DisplayError {
        /// The error's text as a procedure failure.
        fn to_rpc_error(&self) -> RpcError;
    }

    impl<E: Display> DisplayError for &ErrorWrap<E> {
        fn to_rpc_error(&self) -> RpcError {
            RpcError::Failed(self.0.to_string())
        }
    }
}
