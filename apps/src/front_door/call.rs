//! `POST /v1/call/{procedure}`: a JSON object of keyword arguments in, the procedure's JSON
//! result out.
//!
//! In order: the timeout header is read, the request is admitted (or refused with 503 at
//! once when it would wait too long), its body is read up to its limit and checked to be a JSON
//! object, it waits for a place to run (503 when none came within the queue-time target), and
//! is called with what is left of its deadline. Admitting before reading bounds the memory
//! bodies take to (running + waiting) x the body limit, whatever the number of connections. A client that goes away drops this
//! future and with it the call, which the transport then forgets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use rpc_core::{Encoding, ErrorKind, RpcError};
use serde_json::value::RawValue;

use super::{reply, FrontDoor, Refusal};
use crate::prometheus::names;

/// The header a client sets to give its call a timeout, in seconds (a decimal: `2.5`); capped
/// by the front door's `max_timeout`.
pub const TIMEOUT_HEADER: &str = "x-timeout";

/// The longest procedure name accepted (AMQP's limit on a routing key).
const MAX_PROCEDURE: usize = 255;

/// Handles one call.
pub async fn call(
    State(door): State<Arc<FrontDoor>>,
    Path(procedure): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let timeout = match request_timeout(&headers, door.config.timeout, door.config.max_timeout) {
        Ok(timeout) => timeout,
        Err(message) => return reply::error(StatusCode::BAD_REQUEST, "Protocol", &message),
    };
    let deadline = tokio::time::Instant::now() + timeout;
    if procedure.len() > MAX_PROCEDURE {
        let err = RpcError::UnknownProcedure(format!(
            "a procedure name of {} bytes (at most {MAX_PROCEDURE})",
            procedure.len()
        ));
        return reply::rpc_error(&err);
    }
    let ticket = match door.admission.enter() {
        Ok(ticket) => ticket,
        Err(refusal) => {
            // Its (usually small) body is read and thrown away first: a response that leaves
            // the body unread closes the connection, and an overloaded producer would then
            // spend its time on clients reconnecting to be refused again.
            drain(body, DRAIN_REFUSED).await;
            return overloaded(&refusal);
        }
    };
    let args = match read_kwargs(body, door.config.max_body, deadline).await {
        Ok(args) => args,
        Err(response) => return response,
    };
    let running = match tokio::time::timeout_at(deadline, ticket.run()).await {
        Ok(Ok(place)) => place,
        Ok(Err(refusal)) => return overloaded(&refusal),
        Err(_) => {
            let err = RpcError::DeadlineExceeded;
            door.observer
                .record(&procedure, None, started.elapsed(), Err(&err));
            return reply::rpc_error(&err);
        }
    };
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let client = door.client.clone().with_timeout(left);
    let answer = client.call_traced(&procedure, Encoding::Json, args).await;
    // The consumer is done with it: the next call may go while this one is recorded and
    // answered.
    drop(running);
    let consumer = answer.consumer.as_deref();
    let latency = started.elapsed();
    door.observer.record(
        &procedure,
        consumer,
        latency,
        answer.result.as_ref().map(|_| ()),
    );
    match answer.result {
        Ok(json) => reply::result(json),
        Err(err) => {
            if err.kind() == ErrorKind::Panicked || err.kind() == ErrorKind::Failed {
                tracing::warn!("{procedure}: {err}");
            }
            reply::rpc_error(&err)
        }
    }
}

/// 503 `Overloaded` (with `Retry-After`) for a request admission refused.
fn overloaded(refusal: &Refusal) -> Response {
    metrics::counter!(names::PRODUCER_REJECTED).increment(1);
    reply::rpc_error(&RpcError::Overloaded(refusal.to_string()))
}

/// The call's timeout: the header's, capped at `max`, else `default`.
///
/// # Errors
/// A message for a header that is not a positive number of seconds.
fn request_timeout(
    headers: &HeaderMap,
    default: Duration,
    max: Duration,
) -> Result<Duration, String> {
    let Some(value) = headers.get(TIMEOUT_HEADER) else {
        return Ok(default.min(max));
    };
    let text = value
        .to_str()
        .map_err(|_| format!("{TIMEOUT_HEADER} is not text"))?;
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{TIMEOUT_HEADER}: `{text}` is not a number of seconds"))?;
    if seconds.is_nan() || seconds <= 0.0 || !seconds.is_finite() {
        return Err(format!(
            "{TIMEOUT_HEADER}: `{text}` is not a positive number of seconds"
        ));
    }
    Ok(Duration::try_from_secs_f64(seconds).unwrap_or(max).min(max))
}

/// Bytes of an oversized body read and thrown away before answering 413, so that a client
/// still sending it reads the answer instead of a reset connection; beyond this (or
/// [`DRAIN_TIME`]) the connection is closed on it.
const DRAIN_MAX: usize = 8 << 20;

/// The longest time spent throwing away the body of a request refused for overload (up to
/// [`DRAIN_MAX`] bytes).
const DRAIN_REFUSED: Duration = Duration::from_millis(100);

/// The longest time spent throwing away an oversized body.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// The body, at most `max` bytes, read before `deadline`, when it is one JSON object.
///
/// # Errors
/// The response to send: 413 when over the limit, 400 when not a JSON object or unreadable,
/// 504 when the body did not arrive in time.
async fn read_kwargs(
    body: Body,
    max: usize,
    deadline: tokio::time::Instant,
) -> Result<Vec<u8>, Response> {
    let mut chunks = body.into_data_stream();
    let mut bytes = Vec::new();
    loop {
        let chunk = match tokio::time::timeout_at(deadline, chunks.next()).await {
            Err(_) => return Err(reply::rpc_error(&RpcError::DeadlineExceeded)),
            Ok(None) => break,
            Ok(Some(Err(err))) => {
                let message = format!("cannot read the body: {err}");
                return Err(reply::error(StatusCode::BAD_REQUEST, "Protocol", &message));
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        if bytes.len() + chunk.len() > max {
            drop(bytes);
            drain_stream(chunks, DRAIN_TIME).await;
            return Err(reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Protocol",
                &format!("the body is over the limit of {max} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    match serde_json::from_slice::<&RawValue>(&bytes) {
        Ok(raw) if raw.get().starts_with('{') => Ok(bytes),
        Ok(_) => Err(not_an_object("the body is JSON but not an object")),
        Err(err) => Err(not_an_object(&format!("the body is not JSON: {err}"))),
    }
}

/// Reads `body` and throws it away, at most [`DRAIN_MAX`] bytes and `time`.
async fn drain(body: Body, time: Duration) {
    drain_stream(body.into_data_stream(), time).await;
}

async fn drain_stream(mut chunks: axum::body::BodyDataStream, time: Duration) {
    let mut drained = 0usize;
    let drain = async {
        while let Some(Ok(chunk)) = chunks.next().await {
            drained += chunk.len();
            if drained > DRAIN_MAX {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(time, drain).await;
}

fn not_an_object(why: &str) -> Response {
    reply::error(
        StatusCode::BAD_REQUEST,
        "BadArguments",
        &format!("{why}; send the keyword arguments as one JSON object, e.g. {{\"n\": 90}}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_header_is_capped_and_checked() {
        let s = Duration::from_secs;
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(TIMEOUT_HEADER, value.parse().unwrap());
            request_timeout(&headers, s(30), s(60))
        };
        assert_eq!(request_timeout(&HeaderMap::new(), s(30), s(60)), Ok(s(30)));
        assert_eq!(with("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(with("1e9"), Ok(s(60)));
        assert!(with("0").is_err());
        assert!(with("-1").is_err());
        assert!(with("soon").is_err());
        assert!(with("NaN").is_err());
    }
}
