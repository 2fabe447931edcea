//! [`ConsumerStatus`]: one consumer as the pool sees it, for monitoring.

/// One consumer as the pool sees it, from [`TcpTransport::consumers`](crate::TcpTransport::consumers).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerStatus {
    /// The address it was given as.
    pub addr: String,
    /// Whether it is in rotation (connected).
    pub up: bool,
    /// Its capacity, as it said when it last connected (0 before that).
    pub capacity: usize,
    /// Calls sent to it and not answered yet.
    pub outstanding: usize,
    /// Calls it answered (results and remote errors alike).
    pub completed: u64,
    /// Calls lost with a connection to it and sent again.
    pub retried: u64,
    /// How many times the pool connected to it (a reconnection after a failure or an idle
    /// close counts again).
    pub connects: u64,
    /// Why it was last unreachable, if it was.
    pub last_error: Option<String>,
}
