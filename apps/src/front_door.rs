//! The producer's HTTP/JSON front door: outside clients call procedures over HTTP, the
//! producer has the consumers run them, with admission control, health, metrics and a live
//! dashboard.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/call/{procedure}` | body: a JSON object of keyword arguments; `200` with the JSON result, or an error (below) |
//! | `GET /healthz` | `200` while the process is up |
//! | `GET /readyz` | `200` when at least one consumer is reachable, else `503` |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /` | the dashboard, one self-contained page |
//! | `GET /v1/dashboard` | what the dashboard shows, as JSON |
//!
//! Errors are `{"error": {"type": "<RpcError kind>", "message": "..."}}`: unknown procedure
//! 404, bad arguments 422, a body that is not a JSON object 400, a body over the limit 413, the
//! procedure failed or panicked 500, a transport or protocol failure 502, no consumer or
//! overloaded 503 (with `Retry-After`), deadline exceeded 504. The `x-timeout` header gives a
//! call its timeout in seconds, capped by [`FrontDoorConfig::max_timeout`]. With API keys
//! ([`FrontDoorConfig::api_keys`]) the calls, `/metrics` and `/v1/dashboard` need
//! `Authorization: Bearer <key>` (401 `Unauthorized` without a key accepted).
//!
//! # Layout
//! - `admission`: how many calls run at once, and how long others may wait for a place.
//! - `auth`: the API-key check.
//! - `call`: the call route.
//! - `reply`: results and errors as HTTP responses.
//! - `dashboard`: the page and its data.

mod admission;
mod auth;
mod call;
mod dashboard;
mod reply;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use rpc_core::Client;

pub use admission::{Admission, Place, Refusal, Ticket};
pub use auth::UNAUTHORIZED;
pub use call::TIMEOUT_HEADER;
pub use reply::{status_of, RETRY_AFTER_SECONDS};

use crate::connect::Consumers;
use crate::producer::Observer;
use crate::prometheus::{self, names};
use crate::security::ApiKeys;

/// How the front door admits and limits calls.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FrontDoorConfig {
    /// Calls running at once; 0 means what the consumers can run: over TCP each consumer's
    /// capacity (its workers) plus [`PIPELINE`], summed over the consumers up (followed as they
    /// come and go); while the wait line stands, their workers, and a pipeline place only as a
    /// running call is due to end; over AMQP [`AMQP_IN_FLIGHT`]. Default 0.
    pub max_in_flight: usize,
    /// The queue-time target: a request that would wait longer than this for a place to run
    /// gets 503 `Overloaded` at once, and one that has waited this long gets it then.
    /// Default 20 ms.
    pub max_queue_time: Duration,
    /// Calls waiting for a place at most, whatever their expected wait (this bounds the
    /// memory their bodies take). Default 1,024.
    pub max_waiting: usize,
    /// The largest request body, in bytes. Default 1 MiB.
    pub max_body: usize,
    /// A call's timeout when the request sets none. Default 30 s.
    pub timeout: Duration,
    /// The longest timeout a request may ask for. Default 300 s.
    pub max_timeout: Duration,
    /// The API keys a request must carry (`Authorization: Bearer <key>`) to call a procedure,
    /// read `/metrics` or the dashboard's data; `/healthz`, `/readyz` and the dashboard's
    /// page (which holds no data) stay open. Default none: every request is let in.
    pub api_keys: Option<Arc<ApiKeys>>,
}

/// Calls beyond its capacity each TCP consumer is given by the automatic in-flight limit, so
/// that a consumer finds its next call already sent when it finishes one.
pub const PIPELINE: usize = 1;

/// The automatic in-flight limit over AMQP, where the producer cannot see the consumers'
/// capacity (the broker's queues hold the rest).
pub const AMQP_IN_FLIGHT: usize = 64;

/// How often the automatic in-flight limit follows the TCP consumers' capacity.
const FOLLOW_CAPACITY_EVERY: Duration = Duration::from_millis(250);

impl Default for FrontDoorConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 0,
            max_queue_time: Duration::from_millis(20),
            max_waiting: 1024,
            max_body: 1 << 20,
            timeout: rpc_core::DEFAULT_TIMEOUT,
            max_timeout: Duration::from_secs(300),
            api_keys: None,
        }
    }
}

/// What the routes share.
pub struct FrontDoor {
    client: Client,
    consumers: Consumers,
    observer: Arc<Observer>,
    admission: Arc<Admission>,
    metrics: Option<PrometheusHandle>,
    config: FrontDoorConfig,
}

impl FrontDoor {
    /// A front door calling through `client`, showing `consumers`, counting calls in
    /// `observer`, and rendering `metrics` (`/metrics` answers 503 without).
    pub fn new(
        client: Client,
        consumers: Consumers,
        observer: Arc<Observer>,
        metrics: Option<PrometheusHandle>,
        config: FrontDoorConfig,
    ) -> Arc<Self> {
        let automatic = config.max_in_flight == 0;
        let tcp_places = places(&consumers).filter(|_| automatic);
        let (limit, while_standing) = match tcp_places {
            Some(places) => places,
            None if automatic => (AMQP_IN_FLIGHT, AMQP_IN_FLIGHT),
            None => (config.max_in_flight, config.max_in_flight),
        };
        let admission = Admission::new(limit, config.max_queue_time, config.max_waiting);
        admission.set_limit(limit, while_standing);
        if tcp_places.is_some() {
            follow_capacity(consumers.clone(), Arc::downgrade(&admission));
        }
        Arc::new(Self {
            client,
            consumers,
            observer,
            admission,
            metrics,
            config,
        })
    }

    /// Its routes.
    pub fn router(self: &Arc<Self>) -> Router {
        let guarded = Router::new()
            .route("/v1/call/{procedure}", post(call::call))
            .route("/metrics", get(metrics_text))
            .route("/v1/dashboard", get(dashboard::data))
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                auth::require_key,
            ));
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/", get(dashboard::page))
            .merge(guarded)
            .fallback(not_found)
            .layer(axum::middleware::map_response(count_response))
            .with_state(self.clone())
    }
}

/// The automatic places over TCP: what the consumers up can run plus their [`PIPELINE`], and
/// while the line stands (an overload that lasts) only what they can run, the pipeline's
/// places given out as running calls are due to end, so that an admitted call does not wait at
/// a consumer behind another run. `None` over AMQP.
fn places(consumers: &Consumers) -> Option<(usize, usize)> {
    Some((consumers.capacity(PIPELINE)?, consumers.capacity(0)?))
}

/// Keeps the admission's limit at what the TCP consumers up can run, as long as it exists.
fn follow_capacity(consumers: Consumers, admission: std::sync::Weak<Admission>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut every = tokio::time::interval(FOLLOW_CAPACITY_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(admission) = admission.upgrade() else {
                return;
            };
            if let Some((limit, while_standing)) = places(&consumers) {
                if (limit, while_standing) != admission.limit() {
                    tracing::info!(
                        places = limit,
                        while_standing,
                        "calls running at once follow the consumers' capacity"
                    );
                    admission.set_limit(limit, while_standing);
                }
            }
        }
    });
}

async fn count_response(response: Response) -> Response {
    metrics::counter!(names::HTTP_RESPONSES, "status" => response.status().as_str().to_string())
        .increment(1);
    response
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "up"}))
}

async fn readyz(State(door): State<Arc<FrontDoor>>) -> Response {
    let up = door.consumers.up().await;
    let status = if up > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({"ready": up > 0, "consumers_up": up})),
    )
        .into_response()
}

async fn metrics_text(State(door): State<Arc<FrontDoor>>) -> Response {
    let Some(handle) = &door.metrics else {
        return reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Shutdown",
            "metrics are not recorded in this process",
        );
    };
    metrics::gauge!(names::PRODUCER_IN_FLIGHT).set(door.admission.in_flight() as f64);
    metrics::gauge!(names::PRODUCER_WAITING).set(door.admission.waiting() as f64);
    metrics::gauge!(names::PRODUCER_CONSUMERS_UP).set(door.consumers.up().await as f64);
    // Registered here so that it reads 0 before the first rejection.
    metrics::counter!(names::PRODUCER_REJECTED).increment(0);
    prometheus::text(handle).into_response()
}

async fn not_found() -> Response {
    reply::error(
        StatusCode::NOT_FOUND,
        "UnknownProcedure",
        "no such route: POST /v1/call/{procedure}, GET /healthz, /readyz, /metrics, /",
    )
}
