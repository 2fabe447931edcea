//! [`Client`]: calls over any [`Transport`], with the deadline enforced once for all of them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

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

    /// The transport underneath.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Calls `procedure` with a tuple of arguments in bincode and decodes its result.
    ///
    /// # Errors
    /// Whatever [`Client::call_raw`] returns, or [`RpcError::Protocol`] when the result does
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
        let call = Call::new(procedure, Encoding::Bincode, args).with_timeout(self.timeout);
        let bytes = self.call_raw(call).await?;
        decode_result(Encoding::Bincode, &bytes)
    }

    /// Sends an already encoded call, its own timeout enforced, and returns the encoded result.
    ///
    /// # Errors
    /// [`RpcError::DeadlineExceeded`] when `call.timeout` passes first; otherwise whatever the
    /// transport or the remote procedure returned.
    pub async fn call_raw(&self, call: Call) -> Result<Vec<u8>, RpcError> {
        let timeout = call.timeout;
        match tokio::time::timeout(timeout, self.transport.call(call)).await {
            Ok(result) => result,
            Err(_) => Err(RpcError::DeadlineExceeded),
        }
    }

    /// Like [`Client::call_raw`], and says which consumer answered when the transport knows.
    pub async fn call_traced(&self, call: Call) -> Answer {
        let timeout = call.timeout;
        match tokio::time::timeout(timeout, self.transport.call_traced(call)).await {
            Ok(answer) => answer,
            Err(_) => Answer {
                result: Err(RpcError::DeadlineExceeded),
                consumer: None,
            },
        }
    }
}
