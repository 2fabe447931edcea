//! [`AmqpConfig`]: everything both halves need to know about the broker and the topology.

use std::time::Duration;

use crate::AmqpUrl;

/// The default largest request body a consumer decodes: 16 MiB, as the TCP transport's
/// largest frame (`transport_tcp::DEFAULT_MAX_FRAME`).
pub const DEFAULT_MAX_BODY: usize = 16 << 20;

/// Where replies come back to a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ReplyMode {
    /// A server-named, auto-delete reply queue per client, bound to the dead-letter exchange
    /// `rpc.dlx` by its `From` header, as aio-pika does: a request that expires in its queue
    /// comes back at once as `deadline exceeded`. The default.
    #[default]
    Queue,
    /// RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`): no reply queue to declare, replies
    /// are at-most-once, and an expired request is simply dropped, so the caller waits for its
    /// own timer. RabbitMQ advises against it for high rates to one requester.
    DirectReplyTo,
}

/// How a client or consumer connects and what it declares.
///
/// ```
/// use std::time::Duration;
/// use transport_amqp::{AmqpConfig, ReplyMode};
///
/// let config = AmqpConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f")
///     .with_reply_mode(ReplyMode::DirectReplyTo)
///     .with_reconnect_delays(Duration::from_millis(50), Duration::from_secs(2));
/// assert_eq!(config.reply_mode, ReplyMode::DirectReplyTo);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AmqpConfig {
    /// The broker. Default: [`AmqpUrl::resolve`]`(None)`, i.e. `AMQP_URL`, `RABBITMQ_URL` or
    /// `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: AmqpUrl,
    /// Where replies come back. Default: [`ReplyMode::Queue`].
    pub reply_mode: ReplyMode,
    /// Declare request queues durable. RabbitMQ refuses (406) to re-declare a queue with other
    /// flags, so this must match every peer's, and aio-pika's JsonRPC declares them
    /// non-durable. Default: `false`.
    pub durable_queues: bool,
    /// The first wait before reconnecting after the broker went away; doubled after each
    /// failed attempt. Default: 100 ms.
    pub reconnect_min: Duration,
    /// The longest wait between reconnection attempts. Default: 5 s.
    pub reconnect_max: Duration,
    /// The connection name shown in RabbitMQ's management UI. Default: `rpc`.
    pub connection_name: String,
    /// The largest request body a consumer decodes, in bytes. A larger request is not decoded
    /// nor run: it gets a [`rpc_core::RpcError::Protocol`] reply ("exceeds the limit") and is
    /// acked, never requeued. The body has already crossed the network by then; what bounds
    /// the memory a message takes is the broker's own `max_message_size` (128 MiB by default
    /// on RabbitMQ 3.8 and later). Default: [`DEFAULT_MAX_BODY`], 16 MiB.
    pub max_body: usize,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: AmqpUrl::resolve(None),
            reply_mode: ReplyMode::default(),
            durable_queues: false,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            connection_name: "rpc".to_string(),
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

impl AmqpConfig {
    /// The default configuration for the broker at `url`.
    pub fn new(url: impl Into<AmqpUrl>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The same configuration with another reply mode.
    pub fn with_reply_mode(mut self, reply_mode: ReplyMode) -> Self {
        self.reply_mode = reply_mode;
        self
    }

    /// The same configuration declaring request queues durable or not.
    pub fn with_durable_queues(mut self, durable: bool) -> Self {
        self.durable_queues = durable;
        self
    }

    /// The same configuration with other reconnection delays (first and longest).
    pub fn with_reconnect_delays(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max.max(min);
        self
    }

    /// The same configuration with another limit on request bodies, in bytes.
    pub fn with_max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body;
        self
    }

    /// The same configuration with another connection name.
    pub fn with_connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = name.into();
        self
    }
}
