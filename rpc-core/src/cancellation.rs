//! [`Cancellation`]: how a running procedure learns that nobody wants its answer any more.

use std::fmt;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{Deadline, RpcError};

/// Tells a running procedure that its call was cancelled: the caller dropped it (over TCP a
/// cancel message reaches the consumer), the consumer is dropping it, or its deadline passed.
///
/// A synchronous procedure cannot be stopped from outside, so long work opts in: it declares a
/// parameter of this type (the `#[handler]` macro recognises it; it is not an argument on the
/// wire and the generated client does not have it) and checks it between steps.
///
/// ```
/// use rpc_core::{Cancellation, RpcError};
///
/// pub struct Counter;
///
/// #[rpc_core::handler]
/// impl Counter {
///     /// Counts to `n`, giving up as soon as the call is cancelled.
///     pub fn count(n: u64, cancel: Cancellation) -> Result<u64, RpcError> {
///         let mut total = 0;
///         for i in 0..n {
///             if i % 1_000_000 == 0 {
///                 cancel.check()?;
///             }
///             total += 1;
///         }
///         Ok(total)
///     }
/// }
/// ```
#[derive(Clone)]
pub struct Cancellation {
    token: CancellationToken,
    deadline: Deadline,
}

impl Cancellation {
    /// A cancellation fired by `token` or at `deadline`, whichever comes first.
    pub fn new(token: CancellationToken, deadline: Deadline) -> Self {
        Self { token, deadline }
    }

    /// A cancellation that never fires, for calling a procedure directly (in tests, say).
    pub fn never() -> Self {
        Self::new(CancellationToken::new(), Deadline::after(Duration::MAX))
    }

    /// Whether the call was cancelled or its deadline passed.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled() || self.deadline.has_passed()
    }

    /// `Ok` while the call is wanted.
    ///
    /// # Errors
    /// [`RpcError::DeadlineExceeded`] once the deadline passed, [`RpcError::Cancelled`] once
    /// the caller cancelled: return it from the procedure (`cancel.check()?`).
    pub fn check(&self) -> Result<(), RpcError> {
        self.check_at(tokio::time::Instant::now())
    }

    /// [`Cancellation::check`] with the time already read by the caller.
    pub(crate) fn check_at(&self, now: tokio::time::Instant) -> Result<(), RpcError> {
        if self.deadline.passed_at(now) {
            Err(RpcError::DeadlineExceeded)
        } else if self.token.is_cancelled() {
            Err(RpcError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// The call's deadline.
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    /// Waits until the call is cancelled or its deadline passes (for `async` procedures that
    /// `select!` on it).
    pub async fn cancelled(&self) {
        tokio::select! {
            _ = self.token.cancelled() => {}
            _ = tokio::time::sleep_until(self.deadline.instant()) => {}
        }
    }
}

impl fmt::Debug for Cancellation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancellation")
            .field("cancelled", &self.token.is_cancelled())
            .field("deadline", &self.deadline)
            .finish()
    }
}
