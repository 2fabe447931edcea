//! HTTP answers: a result as plain JSON, an error as `{"error": {"type", "message"}}` with the
//! status its kind calls for.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rpc_core::{ErrorKind, RpcError};

/// Seconds a client told `Overloaded` (or `NoConsumer`) is asked to wait before trying again.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// `200` with the procedure's result, already JSON.
pub fn result(json: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(json));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The status an error of this kind is answered with.
pub fn status_of(err: &RpcError) -> StatusCode {
    match err.kind() {
        ErrorKind::UnknownProcedure => StatusCode::NOT_FOUND,
        ErrorKind::BadArguments => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Failed | ErrorKind::Panicked => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::NoConsumer | ErrorKind::Overloaded | ErrorKind::Shutdown => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        // What the consumer sent or the network did: the producer is a gateway there.
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// A call's error, with the status of its kind (and `Retry-After` on a 503).
pub fn rpc_error(err: &RpcError) -> Response {
    error(status_of(err), &err.kind().to_string(), &message_of(err))
}

/// An error of `kind` (an [`RpcError`] kind name) with `status`; a 503 carries `Retry-After`.
pub fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"type": kind, "message": message}});
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    response
}

/// The error's own message, without the kind its `Display` starts with (the `Display` text
/// for the kinds that have no message, such as "deadline exceeded").
fn message_of(err: &RpcError) -> String {
    match err.message() {
        "" => err.to_string(),
        message => message.to_string(),
    }
}
