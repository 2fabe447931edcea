//! Connecting to the broker, and waiting between attempts when it is away.
//!
//! Both halves keep no state across connections that the broker would have to remember: after
//! a broker restart they connect anew and declare everything again (request queues, the
//! dead-letter exchange, a new reply queue and its binding), rather than rely on lapin's
//! topology recovery, whose replay of a server-named reply queue and of in-flight publisher
//! confirms is exactly what bites aio-pika's and lapin's users.

use std::time::Duration;

use lapin::uri::{AMQPUri, SASLMechanism};
use lapin::{Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::AmqpConfig;

/// How long one broker of the list may take to accept a connection before the next is tried:
/// a node that is down but whose address does not refuse (a dead host) must not hold up the
/// failover to the others.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a connection to the first broker of `config.url` (one URL, or a cluster's nodes,
/// comma-separated) that accepts one, trying them in the order given.
///
/// # Errors
/// [`Error::Connect`] naming each broker tried (passwords hidden) and lapin's reason.
pub(crate) async fn connect(config: &AmqpConfig) -> Result<Connection, Error> {
    connect_to_broker(config).await
}

/// A lapin connection to the broker of `config` (the first node of its list that accepts,
/// with its TLS settings and login, as the transport's own connections), for asking the
/// broker questions the transport does not, such as how many consumers a queue has.
///
/// # Errors
/// [`rpc_core::RpcError::Io`] naming each broker tried (passwords hidden) and why.
pub async fn connect_broker(config: &AmqpConfig) -> Result<Connection, rpc_core::RpcError> {
    Ok(connect_to_broker(config).await?)
}

async fn connect_to_broker(config: &AmqpConfig) -> Result<Connection, Error> {
    let tls = config.tls.load()?;
    let runtime = lapin::runtime::default_runtime()
        .map_err(Error::broker("no runtime for the connection"))?;
    let mut failures = Vec::new();
    for broker in config.url.brokers() {
        // Parsed here rather than by lapin: its parse errors may quote the URL, password
        // included.
        let mut uri: AMQPUri = match broker.as_str().parse() {
            Ok(uri) => uri,
            Err(err) => {
                let err = err.replace(broker.as_str(), &broker.to_string());
                failures.push(format!("{broker}: not an AMQP URL ({err})"));
                continue;
            }
        };
        if config.tls.external_auth {
            uri.query.auth_mechanism = Some(SASLMechanism::External);
        }
        let properties = ConnectionProperties::default()
            .with_connection_name(config.connection_name.as_str().into());
        let attempt = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect_uri_with_config(uri, properties, tls.clone(), runtime.clone()),
        )
        .await;
        match attempt {
            Ok(Ok(connection)) => {
                tracing::debug!(%broker, "connected to the broker");
                return Ok(connection);
            }
            Ok(Err(err)) => {
                // A TLS port reached with amqp://: the broker's TLS alert read as AMQP frames,
                // or the connection reset after it.
                let tls_port = match err.kind() {
                    lapin::ErrorKind::ParsingError(_) => true,
                    lapin::ErrorKind::IOError(e) => matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                    ),
                    _ => false,
                };
                let hint = if tls_port && !broker.is_tls() {
                    " (the broker did not answer in plain AMQP: if the port speaks TLS, use amqps://)"
                } else {
                    ""
                };
                failures.push(format!("{broker}: {err}{hint}"));
            }
            Err(_) => failures.push(format!("{broker}: no answer in {CONNECT_TIMEOUT:?}")),
        }
    }
    if failures.is_empty() {
        failures.push(format!("no broker URL in `{}`", config.url));
    }
    Err(Error::Connect(failures))
}

/// How long closing a connection may take: a connection the peer reset or a node that is
/// going away may never answer `connection.close`, and the reconnection must not wait on it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Closes `connection` with `reason`, waiting at most [`CLOSE_TIMEOUT`] for the broker's
/// answer; errors are of no interest (the connection may be dead already).
pub(crate) async fn close(connection: &Connection, reason: &str) {
    let closing = connection.close(200, reason.into());
    if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
        tracing::debug!(
            reason,
            "the broker did not answer connection.close; dropped"
        );
    }
}

/// Waits `delay`; `false` at once if `shutdown` fires first.
async fn wait(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

/// How long one reconnection attempt (connecting and declaring) may take: a declaration that
/// involves a node going away may not be answered until that node is gone, or at all.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `attempt` until it succeeds, waiting with [`rpc_core::backoff`] (from
/// `reconnect_min` to `reconnect_max`) between failures; `None` when
/// `shutdown` fires first. Each failure is logged with `what`.
pub(crate) async fn retry<T, F, Fut>(
    config: &AmqpConfig,
    shutdown: &CancellationToken,
    what: &str,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut delays = rpc_core::backoff(config.reconnect_min, config.reconnect_max);
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return None,
            result = tokio::time::timeout(ATTEMPT_TIMEOUT, attempt()) => result.unwrap_or(Err(Error::NoAnswer(ATTEMPT_TIMEOUT))),
        };
        match result {
            Ok(value) => return Some(value),
            Err(err) => tracing::warn!(%err, "{what} failed; retrying"),
        }
        let delay = delays.next().unwrap_or(config.reconnect_max);
        if !wait(delay, shutdown).await {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// lapin's URL parser quotes a URL it cannot take apart, password included: ours must not.
    #[tokio::test]
    async fn an_unparsable_url_is_refused_without_its_password() {
        for url in [
            "amqp:guest:s3cret@host",
            "amqp://guest:s3cret@host:notaport/%2f",
        ] {
            let config = AmqpConfig::new(url);
            let err = connect(&config).await.expect_err("not a URL").to_string();
            assert!(err.contains("not an AMQP URL"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }
}
