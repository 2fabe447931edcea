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
    /// A TLS handshake or stream failed; the text says why in plain words.
    #[error("{0}")]
    Tls(String),
    /// A plain client on a consumer that requires TLS.
    #[error("this consumer requires TLS (TcpTransportConfig::tls)")]
    TlsRequired,
    /// A binary client sent something other than its handshake before it authenticated.
    #[error("authentication required: this consumer requires the shared secret (TcpTransportConfig::secret)")]
    Unauthenticated,
    /// A producer's proof that does not match the consumer's shared secret.
    #[error(
        "authentication failed: the producer's proof does not match this consumer's shared secret"
    )]
    WrongSecret,
    /// A producer with no shared secret, on a consumer that requires one.
    #[error(
        "authentication failed: this consumer requires a shared secret and the producer has none"
    )]
    NoSecret,
    /// The consumer challenged this producer, which has no shared secret.
    #[error("the consumer requires a shared secret and this producer has none (TcpTransportConfig::secret)")]
    SecretRequired,
    /// This producer has a shared secret and the consumer did not prove it knows one.
    #[error("the consumer did not authenticate (it has no shared secret) and this producer requires it to")]
    ConsumerUnauthenticated,
    /// The consumer's proof does not match this producer's shared secret.
    #[error("the consumer's proof does not match this producer's shared secret")]
    WrongConsumerSecret,
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// An I/O error on a TLS stream: a [`Error::Tls`] in plain words when rustls is behind it.
    pub(crate) fn in_tls(self) -> Self {
        match self {
            Error::Io(err) => match crate::security::tls::describe(&err) {
                Some(text) => Error::Tls(text),
                None => Error::Io(err),
            },
            other => other,
        }
    }
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
            | Error::TextNotUtf8
            | Error::Tls(_)
            | Error::TlsRequired
            | Error::Unauthenticated
            | Error::WrongSecret
            | Error::NoSecret
            | Error::SecretRequired
            | Error::ConsumerUnauthenticated
            | Error::WrongConsumerSecret => RpcError::Protocol(err.to_string()),
        }
    }
}
