//! [`RpcError`]: every way a call can fail, as one enum callers match on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a call failed.
///
/// Remote errors cross the wire as data (a [`ErrorKind`] and a message) and come back as the
/// same variant, so a caller matches on them the same way whatever the transport:
///
/// ```
/// use rpc_core::RpcError;
///
/// fn describe(err: &RpcError) -> &'static str {
///     match err {
///         RpcError::BadArguments(_) => "fix the call",
///         RpcError::DeadlineExceeded => "try later",
///         _ => "something else",
///     }
/// }
/// assert_eq!(describe(&RpcError::DeadlineExceeded), "try later");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RpcError {
    /// No procedure of that name is registered (or, over a broker, nobody serves it).
    #[error("unknown procedure: {0}")]
    UnknownProcedure(String),
    /// The arguments did not decode; the message names the parameter.
    #[error("bad arguments: {0}")]
    BadArguments(String),
    /// The procedure ran and returned an error; this is its message.
    #[error("procedure failed: {0}")]
    Failed(String),
    /// The procedure panicked; this is the panic message. The consumer keeps serving.
    #[error("procedure panicked: {0}")]
    Panicked(String),
    /// The call's deadline passed before a reply came.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// No consumer could take the call (all down or unreachable).
    #[error("no consumer available: {0}")]
    NoConsumer(String),
    /// The consumer refused the call because it is at capacity.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The peer sent something that breaks the protocol (malformed or oversized frame).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The transport failed to carry the call (connection reset, broker gone, ...).
    #[error("transport I/O: {0}")]
    Io(String),
    /// The transport or server is shutting down.
    #[error("shut down")]
    Shutdown,
    /// The caller cancelled the call (dropped it) before it finished; what a procedure that
    /// observes [`crate::Cancellation`] returns when it stops early.
    #[error("cancelled by the caller")]
    Cancelled,
}

/// The kind of an [`RpcError`], without its message: what travels as the error's `type`.
///
/// Its text form (`Display`/`FromStr`) is the name used on every wire: `ERROR <kind>: ...` in
/// text mode and `{"error": {"type": "<kind>", ...}}` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`RpcError::UnknownProcedure`].
    UnknownProcedure,
    /// See [`RpcError::BadArguments`].
    BadArguments,
    /// See [`RpcError::Failed`].
    Failed,
    /// See [`RpcError::Panicked`].
    Panicked,
    /// See [`RpcError::DeadlineExceeded`].
    DeadlineExceeded,
    /// See [`RpcError::NoConsumer`].
    NoConsumer,
    /// See [`RpcError::Overloaded`].
    Overloaded,
    /// See [`RpcError::Protocol`].
    Protocol,
    /// See [`RpcError::Io`].
    Io,
    /// See [`RpcError::Shutdown`].
    Shutdown,
    /// See [`RpcError::Cancelled`].
    Cancelled,
}

const KIND_NAMES: [(ErrorKind, &str); 11] = [
    (ErrorKind::UnknownProcedure, "UnknownProcedure"),
    (ErrorKind::BadArguments, "BadArguments"),
    (ErrorKind::Failed, "Failed"),
    (ErrorKind::Panicked, "Panicked"),
    (ErrorKind::DeadlineExceeded, "DeadlineExceeded"),
    (ErrorKind::NoConsumer, "NoConsumer"),
    (ErrorKind::Overloaded, "Overloaded"),
    (ErrorKind::Protocol, "Protocol"),
    (ErrorKind::Io, "Io"),
    (ErrorKind::Shutdown, "Shutdown"),
    (ErrorKind::Cancelled, "Cancelled"),
];

impl ErrorKind {
    /// The wire name of this kind, e.g. `"BadArguments"`.
    pub fn as_str(self) -> &'static str {
        KIND_NAMES
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or("Failed", |(_, name)| name)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorKind {
    type Err = ();

    /// Parses a wire name; unknown names (a Python exception class, say) are an error, and
    /// callers usually map them to [`ErrorKind::Failed`].
    fn from_str(name: &str) -> Result<Self, ()> {
        KIND_NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(kind, _)| *kind)
            .ok_or(())
    }
}

impl RpcError {
    /// This error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RpcError::UnknownProcedure(_) => ErrorKind::UnknownProcedure,
            RpcError::BadArguments(_) => ErrorKind::BadArguments,
            RpcError::Failed(_) => ErrorKind::Failed,
            RpcError::Panicked(_) => ErrorKind::Panicked,
            RpcError::DeadlineExceeded => ErrorKind::DeadlineExceeded,
            RpcError::NoConsumer(_) => ErrorKind::NoConsumer,
            RpcError::Overloaded(_) => ErrorKind::Overloaded,
            RpcError::Protocol(_) => ErrorKind::Protocol,
            RpcError::Io(_) => ErrorKind::Io,
            RpcError::Shutdown => ErrorKind::Shutdown,
            RpcError::Cancelled => ErrorKind::Cancelled,
        }
    }

    /// This error's message without the kind prefix (empty for unit variants).
    pub fn message(&self) -> &str {
        match self {
            RpcError::UnknownProcedure(m)
            | RpcError::BadArguments(m)
            | RpcError::Failed(m)
            | RpcError::Panicked(m)
            | RpcError::NoConsumer(m)
            | RpcError::Overloaded(m)
            | RpcError::Protocol(m)
            | RpcError::Io(m) => m,
            RpcError::DeadlineExceeded | RpcError::Shutdown | RpcError::Cancelled => "",
        }
    }

    /// Rebuilds an error from its kind and message, as received from a peer.
    ///
    /// ```
    /// use rpc_core::{ErrorKind, RpcError};
    ///
    /// let err = RpcError::from_parts(ErrorKind::BadArguments, "parameter `n`: not a number");
    /// assert_eq!(err, RpcError::BadArguments("parameter `n`: not a number".into()));
    /// ```
    pub fn from_parts(kind: ErrorKind, message: impl Into<String>) -> Self {
        let message = message.into();
        match kind {
            ErrorKind::UnknownProcedure => RpcError::UnknownProcedure(message),
            ErrorKind::BadArguments => RpcError::BadArguments(message),
            ErrorKind::Failed => RpcError::Failed(message),
            ErrorKind::Panicked => RpcError::Panicked(message),
            ErrorKind::DeadlineExceeded => RpcError::DeadlineExceeded,
            ErrorKind::NoConsumer => RpcError::NoConsumer(message),
            ErrorKind::Overloaded => RpcError::Overloaded(message),
            ErrorKind::Protocol => RpcError::Protocol(message),
            ErrorKind::Io => RpcError::Io(message),
            ErrorKind::Shutdown => RpcError::Shutdown,
            ErrorKind::Cancelled => RpcError::Cancelled,
        }
    }

    /// Rebuilds an error from a peer's type name and message; a type name we do not know (a
    /// Python exception class, say) becomes [`RpcError::Failed`] with `"<type>: <message>"`.
    pub fn from_wire(type_name: &str, message: &str) -> Self {
        match type_name.parse::<ErrorKind>() {
            Ok(kind) => RpcError::from_parts(kind, message),
            Err(()) => RpcError::Failed(format!("{type_name}: {message}")),
        }
    }
}

impl From<std::io::Error> for RpcError {
    fn from(err: std::io::Error) -> Self {
        RpcError::Io(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for (kind, name) in KIND_NAMES {
            assert_eq!(kind.as_str(), name);
            assert_eq!(name.parse::<ErrorKind>(), Ok(kind));
            let err = RpcError::from_parts(kind, "m");
            assert_eq!(err.kind(), kind);
        }
    }

    #[test]
    fn foreign_type_names_become_failed() {
        let err = RpcError::from_wire("ValueError", "bad value");
        assert_eq!(err, RpcError::Failed("ValueError: bad value".into()));
    }
}
