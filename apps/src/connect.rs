//! The one place the apps name transport types: the producer's client transport and the
//! consumer's server, for the transport chosen with `--transport`.

use std::sync::Arc;

use rpc_core::{Registry, RpcError, Transport};
use tokio_util::sync::CancellationToken;
use transport_amqp::{AmqpConfig, AmqpTransport, AmqpUrl};
use transport_tcp::{Pool, PoolConfig, ServerConfig};

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
            Ok(Arc::new(Pool::new(consumers, PoolConfig::default())?))
        }
        TransportKind::Amqp => {
            let config = amqp_config(options);
            tracing::info!(topology = %config.topology, "calling through the broker at {}", config.url);
            Ok(Arc::new(AmqpTransport::connect(config).await?))
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
            transport_tcp::run(listener, registry, ServerConfig::default(), shutdown).await;
            Ok(())
        }
        TransportKind::Amqp => {
            let config = amqp_config(options);
            tracing::info!(topology = %config.topology, "serving through the broker at {}", config.url);
            transport_amqp::serve(config, registry, shutdown).await
        }
    }
}

/// The broker configuration for `options`: `--amqp-url` (else `AMQP_URL`, `RABBITMQ_URL`, the
/// local broker) and `--amqp-topology`.
fn amqp_config(options: &TransportOptions) -> AmqpConfig {
    AmqpConfig::new(AmqpUrl::resolve(options.amqp_url.as_deref()))
        .with_topology(options.amqp_topology)
}
