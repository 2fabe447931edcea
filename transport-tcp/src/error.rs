//! [`Error`]: what goes wrong inside the crate (framing, connections, handshakes, text
//! commands), by kind; it becomes an [`RpcError`] where it leaves the crate or crosses the
//! wire.

use std::time::Duration;

use rpc_core::RpcError;

/// A failure inside the TCP transport.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A frame body over the limit, of a known length (one being encoded, or a decoded
    /// length prefix).
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge { len: usize, limit: usize },
    /// A length prefix over the limit, refused before its body is read.
    #[error("frame exceeds the limit of {limit} bytes")]
    PrefixTooLarge { limit: usize },
    /// The stream ended after a frame's length prefix and part of its body.
    #[error("connection closed inside a frame ({received} of its {len} bytes received)")]
    TruncatedFrame { received: usize, len: usize },
    /// The stream ended inside a frame's length prefix.
    #[error("connection closed inside a frame's length prefix ({received} of {of} bytes)")]
    TruncatedPrefix { received: usize, of: usize },
    /// A whole frame whose body is not a message.
    #[error("undecodable bincode: {0}")]
    Undecodable(bincode::Error),
    /// A message that bincode could not encode.
    #[error("could not encode a frame: {0}")]
    Unencodable(bincode::Error),
    /// The producer speaks another protocol version.
    #[error("protocol version {theirs} is not supported; this consumer speaks {ours}")]
    Version { theirs: u32, ours: u32 },
    /// The consumer's first frame was not its `Welcome`.
    #[error("a reply before the handshake")]
    NoWelcome,
    /// The consumer closed the connection before its `Welcome`.
    #[error("closed during the handshake")]
    ClosedInHandshake,
    /// Connecting and the handshake took longer than the connect timeout.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The consumer refused the connection with this error (another protocol version, say).
    #[error("{0}")]
    Refused(RpcError),
    /// A text command longer than the frame limit.
    #[error("text command longer than {0} bytes")]
    TextTooLong(usize),
    /// A text command not finished within the text timeout.
    #[error("command not completed within {0:?}")]
    TextTimeout(Duration),
    /// A text command that is not UTF-8.
    #[error("text command is not UTF-8")]
    TextNotUtf8,
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<Error> for RpcError {
    fn from(err: Error) -> Self {
        match err {
            Error::Refused(err) => err,
            Error::Io(_) | Error::ClosedInHandshake | Error::ConnectTimeout => {
                RpcError::Io(err.to_string())
            }
            Error::Unencodable(_) => RpcError::Failed(err.to_string()),
            Error::FrameTooLarge { .. }
            | Error::PrefixTooLarge { .. }
            | Error::TruncatedFrame { .. }
            | Error::TruncatedPrefix { .. }
            | Error::Undecodable(_)
            | Error::Version { .. }
            | Error::NoWelcome
            | Error::TextTooLong(_)
            | Error::TextTimeout(_)
            | Error::TextNotUtf8 => RpcError::Protocol(err.to_string()),
        }
    }
}
