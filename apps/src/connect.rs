//! The one place the apps name transport types: the producer's client transport and the
//! consumer's server, for the transport chosen with `--transport`.

use std::sync::Arc;

use rpc_core::{Registry, RpcError, Transport};
use tokio_util::sync::CancellationToken;
use transport_amqp::{AmqpConfig, AmqpTransport, AmqpUrl};
use transport_tcp::{TcpServerConfig, TcpTransport, TcpTransportConfig};

use crate::cli::{TransportKind, TransportOptions};

/// The client transport for `options`: a pool over `consumers` (ports or `host:port`) for TCP,
/// a connection to the broker for AMQP.
///
/// # Errors
/// [`RpcError::NoConsumer`] for TCP without consumer addresses; [`RpcError::Io`] when the
/// broker cannot be reached.
pub async fn client_transport(
    options: &TransportOptions,
    consumers: &[String],
) -> Result<Arc<dyn Transport>, RpcError> {
    match options.transport {
        TransportKind::Tcp => {
            if consumers.is_empty() {
                return Err(RpcError::NoConsumer(
                    "--transport tcp needs consumer ports or host:port addresses, e.g. `9000 9001`"
                        .into(),
                ));
            }
            tracing::info!("calling TCP consumers {consumers:?}");
            Ok(Arc::new(TcpTransport::new(
                consumers,
                TcpTransportConfig::default(),
            )?))
        }
        TransportKind::Amqp => {
            let url = AmqpUrl::resolve(options.amqp_url.as_deref());
            tracing::info!("calling through the broker at {url}");
            Ok(Arc::new(
                AmqpTransport::connect(AmqpConfig::new(url)).await?,
            ))
        }
    }
}

/// Serves `registry` on the chosen transport until `shutdown` fires, then finishes and answers
/// the calls it holds. For TCP it listens on `host:port`.
///
/// # Errors
/// [`RpcError::Io`] when the port cannot be bound or the broker cannot be reached at start.
pub async fn serve(
    options: &TransportOptions,
    host: &str,
    port: u16,
    registry: Registry,
    shutdown: CancellationToken,
) -> Result<(), RpcError> {
    let registry = Arc::new(registry);
    match options.transport {
        TransportKind::Tcp => {
            let listener = tokio::net::TcpListener::bind((host, port))
                .await
                .map_err(|e| RpcError::Io(format!("cannot listen on {host}:{port}: {e}")))?;
            transport_tcp::serve(listener, registry, TcpServerConfig::default(), shutdown).await;
            Ok(())
        }
        TransportKind::Amqp => {
            let url = AmqpUrl::resolve(options.amqp_url.as_deref());
            tracing::info!("serving through the broker at {url}");
            transport_amqp::serve(AmqpConfig::new(url), registry, shutdown).await
        }
    }
}
