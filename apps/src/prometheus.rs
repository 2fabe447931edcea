//! Prometheus metrics for both apps: one `metrics` recorder per process, rendered in the
//! Prometheus text format by `metrics-exporter-prometheus`.
//!
//! One facade serves both sides: the producer counts its calls through it ([`names`]), and
//! rpc-core's registry counts the consumer's (`rpc_consumer_*`) through the same facade, so a
//! consumer only installs the recorder and serves it ([`serve`]).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http::{self, ConnectionLimits};

/// The names of the producer's metrics.
pub mod names {
    /// Counter: finished calls by `procedure`, `consumer` and `outcome` (`ok` or the error
    /// kind).
    pub const PRODUCER_CALLS: &str = "rpc_producer_calls_total";
    /// Histogram: a call's latency in seconds as its caller saw it, by `procedure`.
    pub const PRODUCER_CALL_SECONDS: &str = "rpc_producer_call_seconds";
    /// Gauge: HTTP calls running now.
    pub const PRODUCER_IN_FLIGHT: &str = "rpc_producer_in_flight";
    /// Gauge: HTTP calls admitted and waiting for a place to run.
    pub const PRODUCER_WAITING: &str = "rpc_producer_waiting";
    /// Counter: HTTP calls refused with 503 `Overloaded` (a wait over the queue-time target,
    /// or the wait line full).
    pub const PRODUCER_REJECTED: &str = "rpc_producer_rejected_total";
    /// Gauge: consumers up (TCP: connected ones; AMQP: consumers on the request queues).
    pub const PRODUCER_CONSUMERS_UP: &str = "rpc_producer_consumers_up";
    /// Counter: HTTP responses by `status` code.
    pub const HTTP_RESPONSES: &str = "rpc_http_responses_total";
}

/// Upper bounds of the latency histograms' buckets, in seconds (every `*_seconds` metric).
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Upper bounds of the buckets of the consumer's batch-size histogram.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// How often the recorder folds recorded samples into its buckets. Without it, samples wait
/// for the next scrape: a process nobody scrapes would keep every one.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle) and starts its
/// upkeep thread.
///
/// # Errors
/// A message when another recorder is already installed.
pub fn install() -> Result<PrometheusHandle, String> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("rpc_consumer_batch_size".into()),
                        BATCH_BUCKETS,
                    )
                })
                .map_err(|err| format!("metrics buckets: {err}"))?;
            let handle = builder
                .install_recorder()
                .map_err(|err| format!("cannot install the metrics recorder: {err}"))?;
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                })
                .map_err(|err| format!("cannot start the metrics upkeep thread: {err}"))?;
            Ok(handle)
        })
        .clone()
}

/// A router answering `GET /metrics` with everything `handle` recorded.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { text(&handle) }
        }),
    )
}

/// The metrics in the Prometheus text format, with its content type.
pub fn text(handle: &PrometheusHandle) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
}

/// Binds `addr` for [`serve`]: the consumer's `--metrics-listen`, bound before it serves so
/// that a taken port stops it at once.
///
/// # Errors
/// A message when the recorder cannot be installed or `addr` cannot be bound.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    install()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|err| format!("cannot listen for metrics on {addr}: {err}"))?;
    if let Ok(bound) = listener.local_addr() {
        tracing::info!(addr = %bound, "metrics listening");
    }
    Ok(listener)
}

/// Serves `GET /metrics` on `listener` (from [`bind`]) until `shutdown` fires.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) {
    match install() {
        Ok(handle) => {
            http::serve(
                listener,
                router(handle),
                ConnectionLimits::default(),
                shutdown,
            )
            .await
        }
        Err(err) => tracing::error!("{err}"),
    }
}
