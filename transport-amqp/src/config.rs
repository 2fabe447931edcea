//! [`AmqpConfig`]: everything both halves need to know about the broker and the topology.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::{AmqpTls, AmqpUrl};

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

/// The default [`AmqpConfig::delivery_limit`]: a request is delivered at most this many times
/// more after its first delivery (4 deliveries in all) before it is dead-lettered back to its
/// caller as a poison task.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 3;

/// The default [`AmqpConfig::prefetch_pipeline`]: requests a consumer holds, beyond those its
/// workers run, so that the next one is already there when a worker frees up.
pub const DEFAULT_PREFETCH_PIPELINE: u16 = 2;

/// The default [`AmqpConfig::max_prefetch_pipeline`]: how deep the pipeline of cheap calls may
/// grow, as deep as a hand-written lapin consumer's usual prefetch of 64.
pub const DEFAULT_MAX_PREFETCH_PIPELINE: u16 = 64;

/// Which queues and messages the request side declares and publishes. Every peer of one
/// request queue, Python ones included, must use the same: RabbitMQ refuses (406) to declare
/// a queue again with other flags or arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Topology {
    /// Durable quorum request queues (`x-queue-type: quorum`) with a delivery limit
    /// ([`AmqpConfig::delivery_limit`]) and the dead-letter exchange; persistent requests.
    /// Replicated across a cluster's nodes, survives a broker restart, and declares nothing
    /// RabbitMQ 4.3 denies by default. The default.
    #[default]
    Quorum,
    /// aio-pika 9.6's own defaults: non-durable, non-exclusive classic request queues with the
    /// dead-letter exchange, transient requests. For brokers before 4.3 (4.3 denies
    /// `transient_nonexcl_queues` by default) and aio-pika peers left on their defaults.
    /// Requests waiting in a queue are lost when the broker restarts, and nothing replicates.
    Classic,
}

impl Topology {
    /// The name used on the command line and in `RPC_AMQP_TOPOLOGY`: `quorum` or `classic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Topology::Quorum => "quorum",
            Topology::Classic => "classic",
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Topology {
    type Err = String;

    /// `quorum` or `classic`, in any case.
    fn from_str(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "quorum" => Ok(Topology::Quorum),
            "classic" => Ok(Topology::Classic),
            other => Err(format!(
                "unknown AMQP topology `{other}` (quorum or classic)"
            )),
        }
    }
}

/// How a client or consumer connects and what it declares.
///
/// ```
/// use std::time::Duration;
/// use transport_amqp::{AmqpConfig, ReplyMode, Topology};
///
/// let config = AmqpConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f")
///     .with_reply_mode(ReplyMode::DirectReplyTo)
///     .with_topology("classic".parse()?)
///     .with_reconnect_delays(Duration::from_millis(50), Duration::from_secs(2));
/// assert_eq!(config.reply_mode, ReplyMode::DirectReplyTo);
/// assert_eq!(config.topology, Topology::Classic);
/// assert_eq!(AmqpConfig::default().topology, Topology::Quorum);
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AmqpConfig {
    /// The broker, or the nodes of a cluster (comma-separated, tried in order). The default
    /// reads no environment (the apps resolve `--amqp-url`, `AMQP_URL` and `RABBITMQ_URL` with
    /// [`AmqpUrl::resolve`]). Default: [`crate::DEFAULT_URL`], the local broker.
    pub url: AmqpUrl,
    /// Where replies come back. Default: [`ReplyMode::Queue`].
    pub reply_mode: ReplyMode,
    /// The request queues' kind and the requests' persistence. Default: [`Topology::Quorum`].
    pub topology: Topology,
    /// In the quorum topology, the queue argument `x-delivery-limit`: how many times a request
    /// is delivered again after its first delivery when its consumer dies (or its connection
    /// drops) before acking it. Past it the broker dead-letters the request back to its caller,
    /// who gets a [`rpc_core::RpcError::Failed`] naming the cause: a task that kills every
    /// consumer it reaches stops there. Part of the queue's arguments, so every peer must use
    /// the same value. Default: [`DEFAULT_DELIVERY_LIMIT`], 3.
    pub delivery_limit: u32,
    /// The first wait before reconnecting after the broker went away; doubled after each
    /// failed attempt, with jitter ([`rpc_core::backoff`]). Default: 100 ms.
    pub reconnect_min: Duration,
    /// The longest wait between reconnection attempts. Default: 5 s.
    pub reconnect_max: Duration,
    /// For this long after the client (re)connected, a request the broker returns unroutable
    /// (its queue does not exist) is published again every 100 ms instead of failing with
    /// `UnknownProcedure`: after a broker restart in the classic topology the request queues
    /// are gone until their consumers have reconnected and declared them again. Outside this
    /// window, a procedure nobody serves fails at once. Default: 10 s.
    pub reconnect_grace: Duration,
    /// After a reconnection, how long a call whose request the broker had confirmed (quorum
    /// topology, reply queue) listens for its reply before publishing the request again: the
    /// request is still in its queue, and its reply comes unless it was sent while the reply
    /// queue did not exist. Default: 2 s.
    pub republish_after: Duration,
    /// How `amqps://` connections verify the broker (a private CA file beside the public web
    /// roots) and identify themselves (a client certificate, SASL `EXTERNAL`). Unused for
    /// `amqp://`. Default: [`AmqpTls::default`], the public web roots only.
    pub tls: AmqpTls,
    /// The connection name shown in RabbitMQ's management UI. Default: `rpc`.
    pub connection_name: String,
    /// The largest request body a consumer decodes, in bytes. A larger request is not decoded
    /// nor run: it gets a [`rpc_core::RpcError::Protocol`] reply ("exceeds the limit") and is
    /// acked, never requeued. The body has already crossed the network by then; what bounds
    /// the memory a message takes is the broker's own `max_message_size` (128 MiB by default
    /// on RabbitMQ 3.8 and later). Default: [`DEFAULT_MAX_BODY`], 16 MiB.
    pub max_body: usize,
    /// How many requests of each procedure a consumer takes from the broker, at least, beyond
    /// those its workers can run at once (`basic.qos` prefetch = workers x batch size + the
    /// pipeline): with none, a worker that finishes waits a broker round trip (ack, then the
    /// next delivery) before it has work again. Requests held this way are not started: they
    /// wait unread, and a consumer that stops gives them back to the queue for another
    /// consumer. The pipeline starts here and stays here for heavy procedures, so that one
    /// consumer does not hold heavy work another could start; for cheap ones it grows, up to
    /// [`AmqpConfig::max_prefetch_pipeline`]. Default: [`DEFAULT_PREFETCH_PIPELINE`], 2.
    pub prefetch_pipeline: u16,
    /// How deep the pipeline of a procedure whose calls are much shorter than a broker round
    /// trip may grow. Each consumer sizes each procedure's pipeline by Little's law from what
    /// it measures: `workers x round trip / run time` requests beyond those running, so that
    /// a worker finds its next request already there, i.e. about a round trip's worth of work
    /// (which another consumer would need the same round trip to be sent), never less than
    /// [`AmqpConfig::prefetch_pipeline`] nor more than this. A change of size is a new
    /// consumer on the queue (the broker fixes a per-consumer prefetch when the consumer
    /// starts). Also a bound on memory: up to this many unread requests per procedure. Set it
    /// to `prefetch_pipeline` for a fixed pipeline. Default:
    /// [`DEFAULT_MAX_PREFETCH_PIPELINE`], 64.
    pub max_prefetch_pipeline: u16,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: AmqpUrl::default(),
            reply_mode: ReplyMode::default(),
            topology: Topology::default(),
            delivery_limit: DEFAULT_DELIVERY_LIMIT,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            reconnect_grace: Duration::from_secs(10),
            republish_after: Duration::from_secs(2),
            tls: AmqpTls::default(),
            connection_name: "rpc".to_string(),
            max_body: DEFAULT_MAX_BODY,
            prefetch_pipeline: DEFAULT_PREFETCH_PIPELINE,
            max_prefetch_pipeline: DEFAULT_MAX_PREFETCH_PIPELINE,
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

    /// The same configuration with another topology.
    pub fn with_topology(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self
    }

    /// The same configuration with another delivery limit (quorum topology).
    pub fn with_delivery_limit(mut self, limit: u32) -> Self {
        self.delivery_limit = limit;
        self
    }

    /// The same configuration with other reconnection delays (first and longest).
    pub fn with_reconnect_delays(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max.max(min);
        self
    }

    /// The same configuration with another grace for unroutable requests after a reconnection.
    pub fn with_reconnect_grace(mut self, grace: Duration) -> Self {
        self.reconnect_grace = grace;
        self
    }

    /// The same configuration with another limit on request bodies, in bytes.
    pub fn with_max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body;
        self
    }

    /// The same configuration with another prefetch pipeline (requests held at least beyond
    /// the workers'; 0 for none).
    pub fn with_prefetch_pipeline(mut self, pipeline: u16) -> Self {
        self.prefetch_pipeline = pipeline;
        self
    }

    /// The same configuration with another bound on the adaptive pipeline (`prefetch_pipeline`
    /// or less: a fixed pipeline).
    pub fn with_max_prefetch_pipeline(mut self, max: u16) -> Self {
        self.max_prefetch_pipeline = max;
        self
    }

    /// The same configuration with other TLS settings.
    pub fn with_tls(mut self, tls: AmqpTls) -> Self {
        self.tls = tls;
        self
    }

    /// The same configuration with another connection name.
    pub fn with_connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = name.into();
        self
    }
}
