//! [`Context`]: what every connection of one server shares.

use std::sync::Arc;

use rpc_core::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::TcpServerConfig;

/// What every connection of one server shares.
pub(crate) struct Context {
    pub(crate) registry: Arc<Registry>,
    pub(crate) config: TcpServerConfig,
    pub(crate) shutdown: CancellationToken,
    /// Every connection and every call, so that shutdown waits for them.
    pub(crate) tracker: TaskTracker,
}
