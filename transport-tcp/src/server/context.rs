//! [`Context`]: what every connection of one server shares.

use std::sync::Arc;

use rpc_core::Registry;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::TcpServerConfig;

/// What every connection of one server shares.
pub(crate) struct Context {
    pub(crate) registry: Arc<Registry>,
    pub(crate) config: TcpServerConfig,
    pub(crate) shutdown: CancellationToken,
    /// The TLS handshake's consumer side, when the config has TLS.
    pub(crate) tls: Option<TlsAcceptor>,
    /// Every connection and every call, so that shutdown waits for them.
    pub(crate) tracker: TaskTracker,
}
