//! What the binaries share: the transport options, logging, and Ctrl-C/SIGTERM handling.
//!
//! Configuration comes from flags, then the environment (`RPC_TRANSPORT`, `AMQP_URL` or
//! `RABBITMQ_URL`, `RPC_AMQP_TOPOLOGY`, `RUST_LOG`), then defaults.

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;

/// Which transport carries the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportKind {
    /// Straight TCP connections from the producer to each consumer's port; no broker.
    Tcp,
    /// A RabbitMQ broker between them (aio-pika compatible).
    Amqp,
}

/// The options every binary takes to choose and reach its transport.
#[derive(Debug, Clone, Args)]
pub struct TransportOptions {
    /// The transport: `tcp` (no broker) or `amqp` (RabbitMQ).
    #[arg(long, env = "RPC_TRANSPORT", value_enum, default_value_t = TransportKind::Tcp)]
    pub transport: TransportKind,

    /// The broker URL for `--transport amqp`; else $AMQP_URL, else $RABBITMQ_URL, else
    /// amqp://guest:guest@127.0.0.1:5672/%2f. A cluster's nodes comma-separated (tried in
    /// order, the next one when a node is lost). `amqps://` uses TLS. Passwords are never logged.
    #[arg(long, value_name = "URL[,URL...]")]
    pub amqp_url: Option<String>,

    /// The request queues for `--transport amqp`: `quorum` (durable, replicated, persistent
    /// requests; RabbitMQ 3.10+ and 4.3's defaults) or `classic` (aio-pika's defaults, for
    /// brokers before 4.3). Every peer of a queue must use the same.
    #[arg(long, env = "RPC_AMQP_TOPOLOGY", value_name = "quorum|classic",
          default_value_t = transport_amqp::Topology::Quorum)]
    pub amqp_topology: transport_amqp::Topology,
}

/// Logs to stderr through `tracing`, filtered by `RUST_LOG`, else by `default` (`info`, `warn`).
///
/// lapin's own warning for a returned message is silenced by default: transport-amqp turns the
/// return into the call's `UnknownProcedure` error, and lapin would print the whole message.
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default},lapin::returned_messages=error"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// A token that fires on the first Ctrl-C or SIGTERM; a second one exits the process at once.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let fired = token.clone();
    tokio::spawn(async move {
        signal().await;
        tracing::warn!("shutting down: finishing the tasks held (signal again to exit now)");
        fired.cancel();
        signal().await;
        tracing::error!("second signal: exiting now");
        std::process::exit(130);
    });
    token
}

async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Parses seconds given as a decimal (`0.5`) into a duration.
///
/// # Errors
/// A message for a negative, non-finite or non-numeric value.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is not a usable duration"))
}
