//! The limits and timeouts of both halves, with defaults fit for one machine or a LAN. Nothing
//! here reads the environment: the apps' command line does that.

use std::time::Duration;

use crate::security::{ClientTls, ServerTls, SharedSecret};

/// The default largest frame body either side accepts: [`rpc_core::DEFAULT_MAX_MESSAGE`],
/// 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = rpc_core::DEFAULT_MAX_MESSAGE;

/// The consumer's limits, for [`crate::TcpServer`] and [`crate::serve`]. Build it from [`Default`] and change the fields you need:
///
/// ```
/// let mut config = transport_tcp::TcpServerConfig::default();
/// config.max_connections = 64;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TcpServerConfig {
    /// The largest frame body accepted; a larger one gets a protocol error and the connection
    /// is closed. Also caps a text command's length. Default: [`DEFAULT_MAX_FRAME`], 16 MiB.
    pub max_frame: usize,
    /// Connections served at once; one more is closed as soon as it is accepted. Default: 1024.
    pub max_connections: usize,
    /// Calls running at once on one binary connection; past that the consumer stops reading
    /// that connection until one finishes. Default: 1024.
    pub max_in_flight: usize,
    /// How long a new connection may stay silent before its first byte; then it is dropped.
    /// Default: 10 s.
    pub handshake_timeout: Duration,
    /// How long a binary connection may stay with no frame and no call running; then it is
    /// closed (a pool reconnects at once). Default: 5 min.
    pub idle_timeout: Duration,
    /// The pause after which a text command with no newline is taken as complete (seed
    /// clients send one packet and wait). Default: 100 ms.
    pub text_pause: Duration,
    /// How long a text client may take to send its whole command; then it gets a protocol
    /// error and is closed. Default: 10 s.
    pub text_timeout: Duration,
    /// How long one write of replies may block on a client that does not read; then the
    /// connection is closed. Default: 30 s.
    pub write_timeout: Duration,
    /// TLS: the consumer's certificate and key, and optionally the CA its clients'
    /// certificates must be signed by. With it, plain TCP clients are refused with a clear
    /// error (binary and text alike). Default: `None`, plain TCP.
    pub tls: Option<ServerTls>,
    /// A shared secret every binary client must prove it knows in the handshake (challenge
    /// and response; the secret never crosses the wire) before any of its calls is read; the
    /// consumer proves it too. Default: `None`, no authentication.
    pub secret: Option<SharedSecret>,
    /// With a `secret`, whether the seed's text commands (which carry no proof) are still
    /// served; when false they get `ERROR Protocol: ... requires authentication`. Default:
    /// false.
    pub allow_text_without_secret: bool,
}

impl Default for TcpServerConfig {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
            max_connections: 1024,
            max_in_flight: 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            text_pause: Duration::from_millis(100),
            text_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            tls: None,
            secret: None,
            allow_text_without_secret: false,
        }
    }
}

/// The producer's settings, for [`crate::TcpTransport`] (a pool over many consumers). Build it from [`Default`] and change the fields you need:
///
/// ```
/// use std::time::Duration;
///
/// let mut config = transport_tcp::TcpTransportConfig::default();
/// config.no_consumer_wait = Duration::from_secs(1);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TcpTransportConfig {
    /// The floor of the pipeline: calls of one procedure always sent to a consumer beyond its
    /// capacity (its `workers`), queued there so that it never waits for the network between
    /// tasks; further calls wait in the producer. The pipeline of a procedure whose calls come
    /// back fast grows beyond it (see `pipeline_budget`). Default: 2.
    pub queued_per_consumer: usize,
    /// The ceiling of the pipeline: the most calls of one procedure sent to a consumer beyond
    /// its capacity, however fast they come back. Default: 64.
    pub max_queued_per_consumer: usize,
    /// The queueing budget: a consumer is sent more calls than its workers (plus
    /// `queued_per_consumer`) only while calls come back within this time, so it never holds
    /// much more than this much queued work. Per procedure: each call answered within it
    /// (from taking its place to its reply) lets one more of that procedure's calls onto a
    /// consumer, up to `max_queued_per_consumer`; each slower one halves that pipeline, down
    /// to `queued_per_consumer`. Heavy procedures thus keep the floor and spread over the
    /// consumers; cheap ones get dozens on the wire. Default: 5 ms.
    pub pipeline_budget: Duration,
    /// The largest reply frame body accepted. Default: [`DEFAULT_MAX_FRAME`], 16 MiB.
    pub max_frame: usize,
    /// How long connecting to a consumer and its handshake may take. Default: 5 s.
    pub connect_timeout: Duration,
    /// The first wait before probing a consumer that is down again. Default: 100 ms.
    pub backoff_min: Duration,
    /// The longest wait between two probes of a consumer that is down: the wait doubles
    /// from `backoff_min` up to this, and each one is cut by a random part of up to a half,
    /// so that producers restarted together do not probe in step. Default: 5 s.
    pub backoff_max: Duration,
    /// How long a call waits for some consumer to be up before it fails with
    /// [`rpc_core::RpcError::NoConsumer`] (never longer than its own timeout). Default: 5 s.
    pub no_consumer_wait: Duration,
    /// How many times a call whose connection broke before its reply is sent again, to
    /// another consumer when there is one. Default: 3.
    pub max_retries: u32,
    /// How often the pool pings each consumer; one that sends nothing (no reply, no pong)
    /// for a whole interval after a ping is taken out of rotation and probed back like one
    /// that broke its connection, its calls sent again elsewhere. A consumer busy with long
    /// calls still answers pings: they are answered by its network task, not its workers.
    /// Default: 10 s.
    pub heartbeat_interval: Duration,
    /// TLS to every consumer, verified against a CA (and a client certificate for consumers
    /// that require one). Default: `None`, plain TCP.
    pub tls: Option<ClientTls>,
    /// The shared secret, proved to consumers that ask for it. With it, a consumer that does
    /// not prove it knows the same secret is refused too. Default: `None`.
    pub secret: Option<SharedSecret>,
}

impl Default for TcpTransportConfig {
    fn default() -> Self {
        Self {
            queued_per_consumer: 2,
            max_queued_per_consumer: 64,
            pipeline_budget: Duration::from_millis(5),
            max_frame: DEFAULT_MAX_FRAME,
            connect_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            no_consumer_wait: Duration::from_secs(5),
            max_retries: 3,
            heartbeat_interval: Duration::from_secs(10),
            tls: None,
            secret: None,
        }
    }
}
