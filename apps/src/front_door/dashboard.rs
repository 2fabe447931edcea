//! The dashboard: one page, embedded in the binary (no CDN, no build step), that polls
//! `/v1/dashboard` every second and draws what it gets.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;
use axum::Json;
use serde::Serialize;

use super::FrontDoor;
use crate::connect::ConsumerState;
use crate::producer::Second;

/// The page, HTML, CSS and script in one file.
const PAGE: &str = include_str!("dashboard.html");

/// `GET /`: the page.
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// What the page shows.
#[derive(Debug, Serialize)]
pub struct Dashboard {
    /// Each consumer, whether it is up, and the calls it answered.
    consumers: Vec<ConsumerRow>,
    /// The last minutes, one entry a second, oldest first.
    series: Vec<Second>,
    /// Failed calls by error kind, since the start.
    errors: BTreeMap<String, u64>,
    /// Calls answered with a result since the start.
    ok: u64,
    /// Calls failed since the start.
    failed: u64,
    /// HTTP calls running now.
    in_flight: usize,
    /// HTTP calls waiting for a place to run.
    waiting: usize,
    /// HTTP calls refused with 503 since the start.
    rejected: u64,
}

#[derive(Debug, Serialize)]
struct ConsumerRow {
    #[serde(flatten)]
    state: ConsumerState,
    ok: u64,
    failed: u64,
}

/// `GET /v1/dashboard`: the data.
pub async fn data(State(door): State<Arc<FrontDoor>>) -> Json<Dashboard> {
    let states = door.consumers.states().await;
    let stats = door.observer.stats();
    let consumers = states
        .into_iter()
        .map(|state| {
            let tally = stats.consumers().get(&state.name);
            ConsumerRow {
                ok: tally.map_or(0, |t| t.ok),
                failed: tally.map_or(0, |t| t.failed),
                state,
            }
        })
        .collect();
    Json(Dashboard {
        consumers,
        series: door.observer.recent(),
        errors: stats.errors().clone(),
        ok: stats.total().ok,
        failed: stats.total().failed,
        in_flight: door.admission.in_flight(),
        waiting: door.admission.waiting(),
        rejected: door.admission.rejected(),
    })
}
