//! The consumer, the serving half: [`serve`] accepts connections, tells binary from text by
//! the first byte, and serves a [`Registry`] until its shutdown token fires; [`TcpServer`]
//! runs it in a task of its own.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rpc_core::{Registry, ServerTask};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::TcpServerConfig;
use crate::security::tls::HANDSHAKE_RECORD;
use crate::security::ServerTls;
use context::Context;

mod binary;
mod context;
mod linger;
mod refuse;
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
        tls: config.tls.as_ref().map(ServerTls::acceptor),
        registry,
        config,
        shutdown,
        tracker: TaskTracker::new(),
    });
    if let Ok(addr) = listener.local_addr() {
        let config = &context.config;
        tracing::info!(
            %addr,
            workers = context.registry.workers(),
            tls = config.tls.is_some(),
            client_certificates = config.tls.as_ref().is_some_and(ServerTls::is_mutual),
            secret = config.secret.is_some(),
            "consumer listening"
        );
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
        // The calls a poll of the connection reads wake the worker once, not once each.
        let task = rpc_core::wake_once(serve_connection(stream, context.clone()));
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

/// Waits for the first byte, then serves the connection: over TLS when the consumer has it
/// (a TLS handshake starts with 0x16), in binary mode (a frame's length prefix starts with
/// 0x00) or text mode (anything else). A plain client on a TLS consumer, and a TLS client on
/// a plain one, get a clear error and are closed.
async fn serve_connection(stream: TcpStream, context: Arc<Context>) {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    let peeked = tokio::select! {
        _ = context.shutdown.cancelled() => return,
        peeked = timeout(context.config.handshake_timeout, stream.peek(&mut first)) => peeked,
    };
    match peeked {
        Err(_) => return tracing::debug!("silent client dropped"),
        Ok(Err(err)) => return tracing::debug!(%err, "connection failed before its first byte"),
        Ok(Ok(0)) => return tracing::debug!("connection closed before its first byte"),
        Ok(Ok(_)) => {}
    }
    match (&context.tls, first[0]) {
        (Some(acceptor), HANDSHAKE_RECORD) => serve_tls(stream, acceptor.clone(), context).await,
        (Some(_), first) => {
            tracing::warn!("a plain client on a TLS consumer: refused");
            refuse::plain_client(stream, first == 0, &context).await;
        }
        (None, HANDSHAKE_RECORD) => {
            tracing::warn!("a TLS client on a plain consumer: refused");
            refuse::tls_client(stream, &context).await;
        }
        (None, 0) => binary::serve(stream, &[], context).await,
        (None, _) => text::serve(stream, Vec::new(), context).await,
    }
}

/// Runs the TLS handshake (within the handshake timeout), then serves the connection in the
/// mode its first byte inside TLS says. A client refused in the handshake (no certificate, or
/// one from another CA, or an expired one, or no TLS at all) costs one log line.
async fn serve_tls(stream: TcpStream, acceptor: TlsAcceptor, context: Arc<Context>) {
    let limit = context.config.handshake_timeout;
    let accepted = tokio::select! {
        _ = context.shutdown.cancelled() => return,
        accepted = timeout(limit, acceptor.accept(stream)) => accepted,
    };
    let mut stream = match accepted {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return tracing::warn!(%err, "TLS handshake failed: client refused"),
        Err(_) => return tracing::warn!("TLS handshake not completed within {limit:?}: dropped"),
    };
    let mut first = [0u8; 1];
    let read = tokio::select! {
        _ = context.shutdown.cancelled() => return,
        read = timeout(limit, stream.read(&mut first)) => read,
    };
    match read {
        Ok(Ok(1)) if first[0] == 0 => binary::serve(stream, &first, context).await,
        Ok(Ok(1)) => text::serve(stream, first.to_vec(), context).await,
        Ok(Ok(_)) => tracing::debug!("TLS connection closed before its first byte"),
        Ok(Err(err)) => tracing::debug!(%err, "TLS connection failed before its first byte"),
        Err(_) => tracing::debug!("silent TLS client dropped"),
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
