//! The one place the apps name transport types: the producer's client transport and the
//! consumer's server, for the transport chosen with `--transport`, and a view of the
//! consumers behind the client transport ([`Consumers`]).

use std::sync::Arc;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use rpc_core::{Registry, RpcError, Transport};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use transport_amqp::{AmqpConfig, AmqpTransport, AmqpUrl};
use transport_tcp::TcpTransport;

use crate::cli::{TransportKind, TransportOptions};
use crate::security::TransportSecurity;

/// A client transport and a view of the consumers it reaches.
pub struct Connected {
    /// The transport calls go through.
    pub transport: Arc<dyn Transport>,
    /// Who is behind it.
    pub consumers: Consumers,
}

/// The client transport for `options`: a pool over `consumers` (ports or `host:port`) for TCP,
/// with `security`'s TLS and secret, a connection to the broker for AMQP.
///
/// # Errors
/// [`RpcError::NoConsumer`] for TCP without consumer addresses; [`RpcError::Io`] when the
/// broker cannot be reached.
pub async fn client_transport(
    options: &TransportOptions,
    consumers: &[String],
    security: &TransportSecurity,
) -> Result<Arc<dyn Transport>, RpcError> {
    Ok(connect(options, consumers, security).await?.transport)
}

/// [`client_transport`], with the view of its consumers the producer's front door shows.
///
/// # Errors
/// As [`client_transport`].
pub async fn connect(
    options: &TransportOptions,
    consumers: &[String],
    security: &TransportSecurity,
) -> Result<Connected, RpcError> {
    match options.transport {
        TransportKind::Tcp => {
            if consumers.is_empty() {
                return Err(RpcError::NoConsumer(
                    "--transport tcp needs consumer ports or host:port addresses, e.g. `9000 9001`"
                        .into(),
                ));
            }
            let config = security.client_config().map_err(RpcError::Io)?;
            tracing::info!(
                tls = config.tls.is_some(),
                secret = config.secret.is_some(),
                "calling TCP consumers {consumers:?}"
            );
            let pool = TcpTransport::new(consumers, config)?;
            Ok(Connected {
                transport: Arc::new(pool.clone()),
                consumers: Consumers::Pool(pool),
            })
        }
        TransportKind::Amqp => {
            let config = amqp_config(options);
            tracing::info!(topology = %config.topology, "calling through the broker at {}", config.url);
            let probe = BrokerProbe::new(
                config
                    .clone()
                    .with_connection_name("rpc producer: consumer probe"),
            );
            let transport = AmqpTransport::connect(config).await?;
            Ok(Connected {
                transport: Arc::new(transport),
                consumers: Consumers::Broker(Arc::new(probe)),
            })
        }
    }
}

/// One consumer (TCP), or the consumers of one request queue (AMQP), as the producer sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerState {
    /// Its address (TCP), or `queue <procedure>` (AMQP).
    pub name: String,
    /// Whether calls can reach it now.
    pub up: bool,
    /// How many consumers this stands for: 1 for a TCP consumer that is up, the number of
    /// consumers on the queue for AMQP, 0 when down.
    pub count: usize,
    /// Calls sent to it and not answered yet (TCP only).
    pub outstanding: Option<usize>,
}

/// Who is behind a client transport.
#[derive(Clone)]
pub enum Consumers {
    /// The TCP pool's consumers, each as the pool sees it.
    Pool(TcpTransport),
    /// The broker: the consumers on the workloads' request queues, asked of the broker.
    Broker(Arc<BrokerProbe>),
}

impl Consumers {
    /// The consumers now; with AMQP, asking the broker (at most 2 s, else reported down).
    pub async fn states(&self) -> Vec<ConsumerState> {
        match self {
            Consumers::Pool(pool) => pool
                .consumers()
                .into_iter()
                .map(|c| ConsumerState {
                    name: c.addr,
                    up: c.up,
                    count: usize::from(c.up),
                    outstanding: Some(c.outstanding),
                })
                .collect(),
            Consumers::Broker(probe) => probe.states().await,
        }
    }

    /// What the consumers up can run at once, each its capacity plus `pipeline` (at least 1);
    /// `None` over AMQP, where the broker does not say.
    pub fn capacity(&self, pipeline: usize) -> Option<usize> {
        match self {
            Consumers::Pool(pool) => {
                let consumers = pool.consumers();
                let up = consumers
                    .iter()
                    .filter(|c| c.up && c.capacity > 0)
                    .map(|c| c.capacity + pipeline)
                    .sum::<usize>();
                // Before the first handshake, a place per consumer: calls then find out.
                Some(if up == 0 { consumers.len().max(1) } else { up })
            }
            Consumers::Broker(_) => None,
        }
    }

    /// How many consumers are up.
    pub async fn up(&self) -> usize {
        let states = self.states().await;
        match self {
            Consumers::Pool(_) => states.iter().filter(|s| s.up).count(),
            // Each consumer serves every queue: the busiest queue counts them best.
            Consumers::Broker(_) => states.iter().map(|s| s.count).max().unwrap_or(0),
        }
    }
}

/// The request queues whose consumers [`BrokerProbe`] counts: the two workloads.
pub const PROBED_QUEUES: [&str; 2] = ["fibonacci_generator.calculate", "neural_analyzer.polarity"];

/// Asks the broker how many consumers read each workload's request queue (a passive queue
/// declaration, which changes nothing), on a connection of its own kept between questions.
pub struct BrokerProbe {
    config: AmqpConfig,
    connection: tokio::sync::Mutex<Option<lapin::Connection>>,
}

impl BrokerProbe {
    /// A probe of the broker(s) of `config` (connected at the first question).
    pub fn new(config: AmqpConfig) -> Self {
        Self {
            config,
            connection: tokio::sync::Mutex::new(None),
        }
    }

    /// Each probed queue and its consumers; all down when the broker does not answer in 2 s.
    pub async fn states(&self) -> Vec<ConsumerState> {
        let counts = tokio::time::timeout(Duration::from_secs(2), self.counts())
            .await
            .unwrap_or_else(|_| Err("the broker did not answer in 2 s".into()));
        let counts = counts.unwrap_or_else(|err| {
            tracing::debug!("broker probe: {err}");
            vec![0; PROBED_QUEUES.len()]
        });
        PROBED_QUEUES
            .iter()
            .zip(counts)
            .map(|(queue, count)| ConsumerState {
                name: format!("queue {queue}"),
                up: count > 0,
                count,
                outstanding: None,
            })
            .collect()
    }

    async fn counts(&self) -> Result<Vec<usize>, String> {
        let mut connection = self.connection.lock().await;
        if connection.as_ref().is_none_or(|c| !c.status().connected()) {
            *connection = Some(self.open().await?);
        }
        let Some(open) = connection.as_ref() else {
            return Err("no connection".into());
        };
        let mut counts = Vec::with_capacity(PROBED_QUEUES.len());
        for queue in PROBED_QUEUES {
            // A passive declaration of a missing queue closes the channel: one per question.
            let channel = open.create_channel().await.map_err(|e| e.to_string())?;
            let options = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            let count = match channel
                .queue_declare(queue.into(), options, FieldTable::default())
                .await
            {
                Ok(declared) => declared.consumer_count() as usize,
                Err(_) => 0,
            };
            let _ = channel.close(200, "probed".into()).await;
            counts.push(count);
        }
        Ok(counts)
    }

    async fn open(&self) -> Result<lapin::Connection, String> {
        transport_amqp::connect_broker(&self.config)
            .await
            .map_err(|e| e.to_string())
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
    security: &TransportSecurity,
    shutdown: CancellationToken,
) -> Result<(), RpcError> {
    let registry = Arc::new(registry);
    match options.transport {
        TransportKind::Tcp => {
            let config = security.server_config().map_err(RpcError::Io)?;
            let listener = tokio::net::TcpListener::bind((host, port))
                .await
                .map_err(|e| RpcError::Io(format!("cannot listen on {host}:{port}: {e}")))?;
            transport_tcp::serve(listener, registry, config, shutdown).await;
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
    let config = AmqpConfig::new(AmqpUrl::resolve(options.amqp_url.as_deref()))
        .with_topology(options.amqp_topology);
    match options.amqp_tls() {
        Some(tls) => config.with_tls(tls),
        None => config,
    }
}
