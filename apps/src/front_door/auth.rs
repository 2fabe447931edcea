//! The API-key check in front of the routes that call procedures or show what they did: a
//! request without `Authorization: Bearer <key>`, or with a key not accepted, gets 401 with the
//! JSON error shape and `WWW-Authenticate: Bearer`. Nothing of the presented key is logged or
//! echoed.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::{reply, FrontDoor};

/// The `type` of a 401's error body.
pub const UNAUTHORIZED: &str = "Unauthorized";

/// Lets the request through when the front door has no keys or the request carries one of
/// them.
pub async fn require_key(
    State(door): State<Arc<FrontDoor>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(keys) = &door.config.api_keys else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| bearer(value.as_bytes()));
    let message = match presented {
        Some(key) if keys.check(key) => return next.run(request).await,
        Some(_) => "the API key is not accepted",
        None => "an API key is needed: send the header `Authorization: Bearer <key>`",
    };
    tracing::debug!(path = %request.uri().path(), "401: {message}");
    let mut response = reply::error(StatusCode::UNAUTHORIZED, UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"rpc\""),
    );
    response
}

/// The token of an `Authorization: Bearer <token>` value (the scheme in any case).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_tokens_are_read() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bear"), None);
    }
}
