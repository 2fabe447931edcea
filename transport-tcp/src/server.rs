//! The consumer, the serving half: [`serve`] accepts connections, tells binary from text by
//! the first byte, and serves a [`Registry`] until its shutdown token fires; [`TcpServer`]
//! runs it in a task of its own.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rpc_core::{Registry, ServerTask};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::TcpServerConfig;
use context::Context;

mod binary;
mod context;
mod linger;
mod text;

/// Serves `registry` on `listener` until `shutdown` fires, then stops accepting, lets every
/// call already started finish and be answered, closes the connections and returns.
///
/// Accept errors (out of file descriptors, say) are logged and retried: they never end the
/// server. A test starts it on port 0:
///
/// ```
/// use std::sync::Arc;
/// use rpc_core::Registry;
/// use tokio_util::sync::CancellationToken;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let shutdown = CancellationToken::new();
/// let server = tokio::spawn(transport_tcp::serve(
///     listener,
///     Arc::new(Registry::new()),
///     transport_tcp::TcpServerConfig::default(),
///     shutdown.clone(),
/// ));
/// shutdown.cancel();
/// server.await?;
/// # Ok(()) }
/// ```
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    config: TcpServerConfig,
    shutdown: CancellationToken,
) {
    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let context = Arc::new(Context {
        registry,
        config,
        shutdown,
        tracker: TaskTracker::new(),
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, workers = context.registry.workers(), "consumer listening");
    }
    loop {
        let accepted = tokio::select! {
            _ = context.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // EMFILE and friends pass: wait a little rather than spin.
                tracing::warn!(%err, "accept failed");
                tokio::select! {
                    _ = context.shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many connections: closing the new one");
            continue;
        };
        let span = tracing::info_span!("connection", %peer);
        let task = serve_connection(stream, context.clone());
        context.tracker.spawn(
            async move {
                task.await;
                drop(permit);
            }
            .instrument(span),
        );
    }
    drop(listener);
    tracing::info!("consumer stopping: finishing the calls it holds");
    context.tracker.close();
    context.tracker.wait().await;
    tracing::info!("consumer stopped");
}

/// Waits for the first byte, then serves the connection in binary mode (a frame's length
/// prefix starts with 0x00) or text mode (anything else).
async fn serve_connection(stream: TcpStream, context: Arc<Context>) {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    let peeked = tokio::select! {
        _ = context.shutdown.cancelled() => return,
        peeked = timeout(context.config.handshake_timeout, stream.peek(&mut first)) => peeked,
    };
    match peeked {
        Err(_) => tracing::debug!("silent client dropped"),
        Ok(Err(err)) => tracing::debug!(%err, "connection failed before its first byte"),
        Ok(Ok(0)) => tracing::debug!("connection closed before its first byte"),
        Ok(Ok(_)) if first[0] == 0 => binary::serve(stream, context).await,
        Ok(Ok(_)) => text::serve(stream, context).await,
    }
}

/// A consumer running on the current runtime: [`TcpServer::bind`] starts it,
/// [`TcpServer::shutdown`] stops it gracefully. Dropping it stops it too, without waiting.
#[derive(Debug)]
pub struct TcpServer {
    addr: SocketAddr,
    task: ServerTask,
}

impl TcpServer {
    /// Binds `addr` (port 0 picks a free port) and serves `registry` there in a spawned task.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn bind(
        addr: impl ToSocketAddrs,
        registry: impl Into<Arc<Registry>>,
        config: TcpServerConfig,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let registry = registry.into();
        let task = ServerTask::spawn(|shutdown| serve(listener, registry, config, shutdown));
        Ok(Self { addr, task })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, finishes and answers the calls already started, and returns when
    /// every connection is closed.
    pub async fn shutdown(self) {
        self.task.shutdown().await;
    }
}
