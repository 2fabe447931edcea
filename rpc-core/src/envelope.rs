//! The envelope: a [`Call`] as the caller hands it to a transport, and the [`Request`] and
//! [`Reply`] that carry it over a wire that multiplexes calls by id.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::{Deadline, Encoding, RpcError};

/// The timeout a call gets unless the caller says otherwise: 30 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One call: which procedure, its encoded arguments, and until when the caller waits.
///
/// The [`Deadline`] is set once, where the call is made, and carried with it; on the wire it
/// travels as the remaining duration, so caller and consumer need no agreeing clocks.
///
/// ```
/// use std::time::Duration;
/// use rpc_core::{Call, Encoding};
///
/// let call = Call::new("fibonacci_generator.calculate", Encoding::Json, br#"{"n": 10}"#.to_vec())
///     .with_timeout(Duration::from_secs(5));
/// assert!(call.deadline.remaining() <= Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The procedure's full name, `handler.method`.
    pub procedure: String,
    /// How `args` are encoded; the reply comes back in the same encoding.
    pub encoding: Encoding,
    /// The encoded arguments.
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
    /// When the caller stops waiting (serialized as the time remaining).
    pub deadline: Deadline,
}

impl Call {
    /// A call whose deadline is the [`DEFAULT_TIMEOUT`] from now.
    pub fn new(procedure: impl Into<String>, encoding: Encoding, args: Vec<u8>) -> Self {
        Self {
            procedure: procedure.into(),
            encoding,
            args,
            deadline: Deadline::after(DEFAULT_TIMEOUT),
        }
    }

    /// The same call with its deadline `timeout` from now.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.with_deadline(Deadline::after(timeout))
    }

    /// The same call with another deadline.
    pub fn with_deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = deadline;
        self
    }
}

/// A [`Call`] with the id that its [`Reply`] will carry, for wires with many calls in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the caller, unique among its calls in flight on one connection.
    pub id: u64,
    /// The call itself.
    pub call: Call,
}

/// The answer to the [`Request`] with the same id: the encoded result or the error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The id of the request this answers.
    pub id: u64,
    /// The result, encoded in the request's encoding, or why there is none.
    pub result: Result<ByteBuf, RpcError>,
}

impl Reply {
    /// A reply to request `id`.
    pub fn new(id: u64, result: Result<Vec<u8>, RpcError>) -> Self {
        Self {
            id,
            result: result.map(ByteBuf::from),
        }
    }

    /// The result, unwrapped from its byte buffer.
    ///
    /// # Errors
    /// The remote error this reply carries.
    pub fn into_result(self) -> Result<Vec<u8>, RpcError> {
        self.result.map(ByteBuf::into_vec)
    }
}
