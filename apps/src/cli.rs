//! What the binaries share: the transport options, logging, and Ctrl-C/SIGTERM handling.
//!
//! Configuration comes from flags, then the environment (`RPC_TRANSPORT`, `AMQP_URL` or
//! `RABBITMQ_URL`, `RPC_AMQP_TOPOLOGY`, `RPC_AMQP_CA_FILE`, `RPC_AMQP_CLIENT_CERT`,
//! `RPC_AMQP_CLIENT_KEY`, `RPC_AMQP_EXTERNAL_AUTH`, `RUST_LOG`), then defaults.

use std::io::IsTerminal;
use std::path::PathBuf;
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

    /// A PEM file of CA certificates trusted for the broker's certificate over `amqps://`,
    /// beside the public web roots: a broker whose certificate a company CA signed.
    #[arg(long, env = "RPC_AMQP_CA_FILE", value_name = "FILE")]
    pub amqp_ca_file: Option<PathBuf>,

    /// The client certificate chain (PEM) presented to a broker that asks for one
    /// (`amqps://`); with --amqp-client-key.
    #[arg(
        long,
        env = "RPC_AMQP_CLIENT_CERT",
        value_name = "FILE",
        requires = "amqp_client_key"
    )]
    pub amqp_client_cert: Option<PathBuf>,

    /// The client certificate's private key (PEM, unencrypted); with --amqp-client-cert.
    #[arg(
        long,
        env = "RPC_AMQP_CLIENT_KEY",
        value_name = "FILE",
        requires = "amqp_client_cert"
    )]
    pub amqp_client_key: Option<PathBuf>,

    /// Log in to the broker with SASL EXTERNAL: the user is the client certificate's, no
    /// password (the broker's `rabbitmq_auth_mechanism_ssl`); needs --amqp-client-cert.
    #[arg(long, env = "RPC_AMQP_EXTERNAL_AUTH", requires = "amqp_client_cert")]
    pub amqp_external_auth: bool,
}

impl TransportOptions {
    /// The options for `transport` with every other one at its default (the environment
    /// unread), for programs and tests that do not parse a command line.
    pub fn new(transport: TransportKind) -> Self {
        Self {
            transport,
            amqp_url: None,
            amqp_topology: transport_amqp::Topology::default(),
            amqp_ca_file: None,
            amqp_client_cert: None,
            amqp_client_key: None,
            amqp_external_auth: false,
        }
    }

    /// The broker's TLS settings from the `--amqp-*` TLS flags; `None` when none is given
    /// (an `amqps://` URL then trusts the public web roots only).
    pub fn amqp_tls(&self) -> Option<transport_amqp::AmqpTls> {
        let mut tls = transport_amqp::AmqpTls::default();
        if let Some(ca) = &self.amqp_ca_file {
            tls = tls.with_ca_file(ca);
        }
        if let (Some(cert), Some(key)) = (&self.amqp_client_cert, &self.amqp_client_key) {
            tls = tls.with_client_identity(cert, key);
        }
        let given = self.amqp_ca_file.is_some() || self.amqp_client_cert.is_some();
        given.then(|| tls.with_external_auth(self.amqp_external_auth))
    }
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
