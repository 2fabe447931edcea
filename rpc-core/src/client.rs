//! [`Client`]: calls over any [`Transport`], with the deadline enforced once for all of them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::timeout_at;

use crate::encoding::{decode_result, to_bincode};
use crate::{Answer, Call, Encoding, RpcError, Transport, DEFAULT_TIMEOUT};

/// A caller over any transport: the untyped half of every generated typed client.
///
/// Every call gets a timeout (default 30 s, [`Client::with_timeout`] to change it); when it
/// passes the caller gets [`RpcError::DeadlineExceeded`] on time, whatever the transport does.
///
/// ```
/// use rpc_core::{memory, Client, Registry};
///
/// struct Calc;
///
/// #[rpc_core::handler]
/// impl Calc {
///     /// Adds two numbers.
///     pub fn add(a: i64, b: i64) -> i64 {
///         a + b
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut registry = Registry::new();
/// registry.register(Calc);
/// let (transport, _server) = memory::spawn(registry);
/// let client = Client::new(transport);
/// let sum: i64 = client.call("calc.add", &(2i64, 3i64)).await.unwrap();
/// assert_eq!(sum, 5);
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    transport: Arc<dyn Transport>,
    timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client over `transport` with the default 30 s timeout.
    pub fn new<T: Transport + 'static>(transport: T) -> Self {
        Self::from_arc(Arc::new(transport))
    }

    /// A client over a shared transport.
    pub fn from_arc(transport: Arc<dyn Transport>) -> Self {
        Self {
            transport,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same client with another timeout for its calls.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The timeout this client gives its calls.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Calls `procedure` with a tuple of arguments in bincode and decodes its result.
    ///
    /// # Errors
    /// Whatever [`Client::send`] returns, or [`RpcError::Protocol`] when the result does
    /// not decode as `R`.
    pub async fn call<A, R>(&self, procedure: &str, args: &A) -> Result<R, RpcError>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.call_bincode(procedure, to_bincode(args)?).await
    }

    /// Calls `procedure` with arguments already encoded as a bincode tuple (the concatenation
    /// of each argument's bincode) and decodes its result.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_bincode<R>(&self, procedure: &str, args: Vec<u8>) -> Result<R, RpcError>
    where
        R: DeserializeOwned,
    {
        let bytes = self.call_raw(procedure, Encoding::Bincode, args).await?;
        decode_result(Encoding::Bincode, &bytes)
    }

    /// Calls `procedure` with arguments already encoded in `encoding`, with this client's
    /// timeout, and returns the encoded result.
    ///
    /// # Errors
    /// As [`Client::send`].
    pub async fn call_raw(
        &self,
        procedure: &str,
        encoding: Encoding,
        args: Vec<u8>,
    ) -> Result<Vec<u8>, RpcError> {
        self.send(self.make_call(procedure, encoding, args)).await
    }

    /// Like [`Client::call_raw`], and says which consumer answered when the transport knows.
    pub async fn call_traced(&self, procedure: &str, encoding: Encoding, args: Vec<u8>) -> Answer {
        let call = self.make_call(procedure, encoding, args);
        let deadline = call.deadline;
        match timeout_at(deadline.instant(), self.transport.call_traced(call)).await {
            Ok(answer) => answer,
            Err(_) => Answer {
                result: Err(RpcError::DeadlineExceeded),
                consumer: None,
            },
        }
    }

    /// Sends a call built by hand, enforcing its own deadline (not this client's timeout).
    ///
    /// When the deadline passes, the transport's call is dropped, which cancels it on the
    /// consumer where the transport can say so.
    ///
    /// # Errors
    /// [`RpcError::DeadlineExceeded`] when the call's deadline passes first; otherwise whatever
    /// the transport or the remote procedure returned.
    pub async fn send(&self, call: Call) -> Result<Vec<u8>, RpcError> {
        let deadline = call.deadline;
        match timeout_at(deadline.instant(), self.transport.call(call)).await {
            Ok(result) => result,
            Err(_) => Err(RpcError::DeadlineExceeded),
        }
    }

    fn make_call(&self, procedure: &str, encoding: Encoding, args: Vec<u8>) -> Call {
        Call::new(procedure, encoding, args).with_timeout(self.timeout)
    }
}
