//! [`Error`]: what goes wrong inside the crate (connecting, declaring, publishing, reading a
//! message), by kind; it becomes an [`RpcError`] where it leaves the crate or crosses the wire.

use std::time::Duration;

use rpc_core::RpcError;

/// The longest routing key (a procedure name) AMQP carries: a short string.
pub(crate) const MAX_NAME: usize = 255;

/// A failure inside the AMQP transport.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// No broker of the list accepted a connection: each one tried, with its reason
    /// (passwords hidden).
    #[error("cannot connect to the broker: {}", .0.join("; "))]
    Connect(Vec<String>),
    /// The TLS settings cannot be used: a CA file, client certificate or key that cannot be
    /// read or holds no certificate or key (named by path, never by contents).
    #[error("TLS settings: {0}")]
    Tls(String),
    /// The broker refused what we were doing, or the connection failed meanwhile.
    #[error("{doing}: {source}")]
    Broker {
        /// What we were doing.
        doing: &'static str,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// A reconnection attempt got no answer in time.
    #[error("no answer from the broker in {0:?}")]
    NoAnswer(Duration),
    /// The broker cancelled one of our consumers (its queue was deleted, or its node left).
    #[error("the broker cancelled the consumer of `{0}`")]
    ConsumerCancelled(String),
    /// A request could not be published on the client's channel.
    #[error("a request could not be published")]
    PublishFailed,
    /// A procedure name longer than a routing key can be.
    #[error("procedure names are at most {MAX_NAME} bytes on AMQP: `{0}...`")]
    NameTooLong(String),
    /// The broker returned a request: no queue is named by its procedure.
    #[error("nobody serves `{procedure}` (the broker returned the request: {code} {text})")]
    Unroutable {
        /// The procedure called.
        procedure: String,
        /// The broker's reply code (312 NO_ROUTE).
        code: u16,
        /// The broker's reply text.
        text: String,
    },
    /// A message whose content type names no encoding we speak.
    #[error("unsupported content type `{0}` (application/json, application/x-rpc-bincode or text/plain)")]
    ContentType(String),
    /// A reply whose `type` is not `call`, `result` nor `error`.
    #[error("reply of unknown type `{0}`")]
    ReplyType(String),
    /// An `error` reply in JSON that is not aio-pika's error shape.
    #[error("undecodable error reply: {0}")]
    BadErrorReply(String),
    /// A request body over the consumer's limit, refused before decoding.
    #[error("request body of {len} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The body's length.
        len: usize,
        /// The consumer's `max_body`.
        limit: usize,
    },
    /// A request dead-lettered by its quorum queue's delivery limit: every consumer it reached
    /// died running it (or lost its connection).
    #[error(
        "poison task: the request was delivered{} and no consumer finished it (each one died \
         running it or lost its connection); the broker's delivery limit dead-lettered it",
        .deliveries.map_or(String::new(), |n| format!(" {n} times"))
    )]
    PoisonTask {
        /// How many times it was delivered, when the broker said.
        deliveries: Option<i64>,
    },
    /// A request dead-lettered for another reason (`rejected`, say).
    #[error("the request was dead-lettered ({0}): a consumer could not answer it")]
    DeadLettered(String),
}

impl Error {
    /// A lapin error while doing `doing`.
    pub(crate) fn broker(doing: &'static str) -> impl FnOnce(lapin::Error) -> Error {
        move |source| Error::Broker { doing, source }
    }
}

impl From<Error> for RpcError {
    fn from(err: Error) -> Self {
        match err {
            Error::Connect(_)
            | Error::Tls(_)
            | Error::Broker { .. }
            | Error::NoAnswer(_)
            | Error::ConsumerCancelled(_)
            | Error::PublishFailed
            | Error::DeadLettered(_) => RpcError::Io(err.to_string()),
            Error::NameTooLong(_) | Error::Unroutable { .. } => {
                RpcError::UnknownProcedure(err.to_string())
            }
            Error::ContentType(_)
            | Error::ReplyType(_)
            | Error::BadErrorReply(_)
            | Error::BodyTooLarge { .. } => RpcError::Protocol(err.to_string()),
            Error::PoisonTask { .. } => RpcError::Failed(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_leaves_the_crate_as_its_rpc_error() {
        let io = RpcError::from(Error::Connect(vec!["amqp://u:***@h: refused".into()]));
        assert_eq!(
            io,
            RpcError::Io("cannot connect to the broker: amqp://u:***@h: refused".into())
        );
        assert!(matches!(
            RpcError::from(Error::Unroutable {
                procedure: "a.b".into(),
                code: 312,
                text: "NO_ROUTE".into()
            }),
            RpcError::UnknownProcedure(_)
        ));
        assert!(matches!(
            RpcError::from(Error::BodyTooLarge { len: 2, limit: 1 }),
            RpcError::Protocol(_)
        ));
        assert_eq!(
            RpcError::from(Error::PoisonTask {
                deliveries: Some(4)
            }),
            RpcError::Failed(
                "poison task: the request was delivered 4 times and no consumer finished it \
                 (each one died running it or lost its connection); the broker's delivery \
                 limit dead-lettered it"
                    .into()
            )
        );
    }
}
