//! What travels: the properties of requests and replies, and their bodies in each encoding.
//!
//! | content type | request body | `result` body | `error` body |
//! |---|---|---|---|
//! | `application/json` | kwargs object (`{"n": 10}`) or positional array | plain JSON | `{"error": {"type", "message", "args"}}` |
//! | `application/x-rpc-bincode` | positional tuple | `Result<bytes, RpcError>` in bincode, as rpc-core's `Reply` | the same |
//! | `text/plain` | the seed's command arguments | the result as text | `ERROR <kind>: <message>` |

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::BasicProperties;
use rpc_core::encoding::{from_bincode, to_bincode};
use rpc_core::{Call, CallResult, Encoding, RpcError, DEFAULT_TIMEOUT};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::Error;
use crate::topology::{long_string, FROM_HEADER};
use crate::Topology;

/// `delivery_mode` 1: not persistent, as aio-pika's RPC sends calls (the classic topology).
pub(crate) const NOT_PERSISTENT: u8 = 1;

/// `delivery_mode` 2: persistent, as requests are sent in the quorum topology.
pub(crate) const PERSISTENT: u8 = 2;

/// The `delivery_mode` of requests in `topology`: persistent in the quorum one.
pub(crate) fn delivery_mode(topology: Topology) -> u8 {
    match topology {
        Topology::Quorum => PERSISTENT,
        Topology::Classic => NOT_PERSISTENT,
    }
}

/// The priority aio-pika's `RPC.call` gives every call.
pub(crate) const CALL_PRIORITY: u8 = 5;

/// The `type` property of an RPC message; aio-pika raises on a reply without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageType {
    /// A request. A request that expired in its queue comes back to the caller still of this
    /// type, through the dead-letter exchange.
    Call,
    /// A successful reply.
    Result,
    /// A failed call's reply.
    Error,
}

impl MessageType {
    /// The wire name: `call`, `result` or `error`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MessageType::Call => "call",
            MessageType::Result => "result",
            MessageType::Error => "error",
        }
    }

    /// The type a wire name names, if any.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "call" => Some(MessageType::Call),
            "result" => Some(MessageType::Result),
            "error" => Some(MessageType::Error),
            _ => None,
        }
    }
}

/// The properties of a request: `type` call, correlation id, `reply_to` and the `From` header
/// (the reply queue), not persistent (set [`PERSISTENT`] for the quorum topology), the encoding's content type, `expiration` = the call's
/// remaining timeout in milliseconds, and a timestamp.
pub(crate) fn request_properties(
    call: &Call,
    correlation_id: &str,
    reply_to: &str,
) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(FROM_HEADER.into(), long_string(reply_to));
    BasicProperties::default()
        .with_content_type(call.encoding.content_type().into())
        .with_type(MessageType::Call.as_str().into())
        .with_correlation_id(correlation_id.into())
        .with_reply_to(reply_to.into())
        .with_headers(headers)
        .with_delivery_mode(NOT_PERSISTENT)
        .with_priority(CALL_PRIORITY)
        .with_expiration(expiration(call.deadline.remaining()))
        .with_timestamp(timestamp())
}

/// A timeout as an AMQP `expiration`: whole milliseconds as a decimal string, at least 1
/// (RabbitMQ reads 0 as "deliver now or drop").
pub(crate) fn expiration(timeout: Duration) -> ShortString {
    let ms = timeout.as_millis().clamp(1, u128::from(u32::MAX));
    ms.to_string().into()
}

fn timestamp() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads a request as a [`Call`] to `procedure` (the queue it came from).
///
/// The timeout is the `expiration` left on the message (the caller's remaining timeout), or
/// rpc-core's default when there is none, as from an aio-pika caller that set no expiration.
///
/// # Errors
/// [`Error::ContentType`] when the content type names no encoding we speak.
pub(crate) fn parse_request(
    procedure: &str,
    properties: &BasicProperties,
    body: Vec<u8>,
) -> Result<Call, Error> {
    let encoding = request_encoding(properties)?;
    let timeout = properties
        .expiration()
        .as_ref()
        .and_then(|ms| ms.as_str().trim().parse::<u64>().ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    Ok(Call::new(procedure, encoding, body).with_timeout(timeout))
}

/// The encoding a request's content type names. A request with no content type is read as
/// JSON, aio-pika's only flavour that interoperates.
///
/// # Errors
/// [`Error::ContentType`] for a content type we do not speak.
pub(crate) fn request_encoding(properties: &BasicProperties) -> Result<Encoding, Error> {
    match properties.content_type() {
        None => Ok(Encoding::Json),
        Some(content_type) => Encoding::from_content_type(content_type.as_str())
            .ok_or_else(|| Error::ContentType(content_type.as_str().to_string())),
    }
}

/// A reply ready to publish: its `type`, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplyBody {
    /// `result` or `error`.
    pub(crate) kind: MessageType,
    /// The encoding the body is in (the request's).
    pub(crate) encoding: Encoding,
    /// The body.
    pub(crate) body: Vec<u8>,
}

impl ReplyBody {
    /// Encodes `result` in `encoding`, as the table in this module's doc says.
    pub(crate) fn encode(encoding: Encoding, result: CallResult) -> Self {
        let kind = if result.is_ok() {
            MessageType::Result
        } else {
            MessageType::Error
        };
        let body = match (encoding, result) {
            (Encoding::Bincode, result) => {
                let wire: Result<ByteBuf, RpcError> = result.map(ByteBuf::from);
                to_bincode(&wire).unwrap_or_else(|err| {
                    // An RpcError of strings always encodes; keep a body in any case.
                    to_bincode(&Err::<ByteBuf, _>(err)).unwrap_or_default()
                })
            }
            (_, Ok(bytes)) => bytes,
            (Encoding::Json, Err(err)) => json_error(&err),
            (Encoding::Text, Err(err)) => rpc_core::text::render_error(&err).into_bytes(),
        };
        Self {
            kind,
            encoding,
            body,
        }
    }

    /// The reply's properties: `type`, the request's correlation id, content type, not
    /// persistent, a timestamp.
    pub(crate) fn properties(&self, correlation_id: Option<&ShortString>) -> BasicProperties {
        let properties = BasicProperties::default()
            .with_content_type(self.encoding.content_type().into())
            .with_type(self.kind.as_str().into())
            .with_delivery_mode(NOT_PERSISTENT)
            .with_timestamp(timestamp());
        match correlation_id {
            Some(id) => properties.with_correlation_id(id.clone()),
            None => properties,
        }
    }
}

/// aio-pika JsonRPC's error shape: `{"error": {"type", "message", "args"}}`.
#[derive(Debug, Serialize, Deserialize)]
struct JsonError {
    error: JsonErrorBody,
}

#[derive(Debug, Serialize, Deserialize)]
struct JsonErrorBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    args: Vec<serde_json::Value>,
}

fn json_error(err: &RpcError) -> Vec<u8> {
    let message = match err.message() {
        "" => err.to_string(),
        message => message.to_string(),
    };
    let wire = JsonError {
        error: JsonErrorBody {
            kind: err.kind().to_string(),
            args: vec![serde_json::Value::String(message.clone())],
            message: Some(message),
        },
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// Reads a reply: its `type` and content type say how.
///
/// A reply of type `call` is the request itself, dead-lettered back: see [`dead_lettered`].
///
/// # Errors
/// The remote error the reply carries, or [`RpcError::Protocol`] when it makes no sense.
pub(crate) fn decode_reply(properties: &BasicProperties, body: Vec<u8>) -> CallResult {
    let kind = properties.kind().as_ref().map(|k| k.as_str()).unwrap_or("");
    let kind = MessageType::parse(kind).ok_or_else(|| Error::ReplyType(kind.to_string()))?;
    if kind == MessageType::Call {
        return Err(dead_lettered(properties));
    }
    let encoding = request_encoding(properties)?;
    match (encoding, kind) {
        (Encoding::Bincode, _) => {
            from_bincode::<Result<ByteBuf, RpcError>>(&body)?.map(ByteBuf::into_vec)
        }
        (_, MessageType::Result) => Ok(body),
        (Encoding::Json, _) => Err(parse_json_error(&body)),
        (Encoding::Text, _) => {
            let line = String::from_utf8_lossy(&body);
            Err(rpc_core::text::parse_error(&line)
                .unwrap_or_else(|| RpcError::Failed(line.into_owned())))
        }
    }
}

fn parse_json_error(body: &[u8]) -> RpcError {
    let Ok(JsonError { error }) = serde_json::from_slice::<JsonError>(body) else {
        return Error::BadErrorReply(String::from_utf8_lossy(body).into_owned()).into();
    };
    if let Ok(kind) = error.kind.parse::<rpc_core::ErrorKind>() {
        return RpcError::from_parts(kind, error.message.unwrap_or_default());
    }
    // A foreign exception (Python's ValueError, say): its first argument is the plain message,
    // `message` is its repr.
    let message = match error.args.first() {
        Some(serde_json::Value::String(text)) => text.clone(),
        _ => error.message.unwrap_or_default(),
    };
    RpcError::Failed(format!("{}: {message}", error.kind))
}

/// Why a request came back through the dead-letter exchange, as its caller's error, from the
/// newest entry of its `x-death` header:
/// - `expired` (or no reason given, as from brokers that add none): it waited in its queue
///   past its deadline, [`RpcError::DeadlineExceeded`];
/// - `delivery_limit`: the quorum queue delivered it as many times as its delivery limit
///   allows and no consumer acked it (each one died running it, or lost its connection): a
///   poison task, [`RpcError::Failed`] saying so;
/// - `rejected` or another reason: a consumer could not answer it, [`RpcError::Io`].
pub(crate) fn dead_lettered(properties: &BasicProperties) -> RpcError {
    let reason = death_reason(properties);
    match reason.as_deref() {
        None | Some("expired") => RpcError::DeadlineExceeded,
        Some("delivery_limit") => Error::PoisonTask {
            deliveries: delivery_count(properties).map(|n| n + 1),
        }
        .into(),
        Some(other) => Error::DeadLettered(other.to_string()).into(),
    }
}

/// The `reason` of the first (newest) `x-death` entry.
fn death_reason(properties: &BasicProperties) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(newest) = deaths.as_slice().first()? else {
        return None;
    };
    string_value(newest.inner().get("reason")?)
}

/// The `x-delivery-count` header a quorum queue sets on a redelivered message.
fn delivery_count(properties: &BasicProperties) -> Option<i64> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get("x-delivery-count")? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
        _ => None,
    }
}

fn string_value(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// The `From` header of a message, when it has one of string type.
#[cfg(test)]
pub(crate) fn from_header(properties: &BasicProperties) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    string_value(headers.inner().get(FROM_HEADER)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(encoding: Encoding, result: CallResult) -> CallResult {
        let reply = ReplyBody::encode(encoding, result);
        decode_reply(&reply.properties(None), reply.body)
    }

    #[test]
    fn results_and_errors_round_trip_in_every_encoding() {
        for encoding in [Encoding::Bincode, Encoding::Json, Encoding::Text] {
            assert_eq!(reply(encoding, Ok(b"42".to_vec())), Ok(b"42".to_vec()));
            for err in [
                RpcError::BadArguments("parameter `n`".into()),
                RpcError::Failed("disk full".into()),
                RpcError::DeadlineExceeded,
                RpcError::UnknownProcedure("no procedure `a.b`".into()),
            ] {
                assert_eq!(reply(encoding, Err(err.clone())), Err(err));
            }
        }
    }

    #[test]
    fn json_errors_have_aio_pikas_shape() {
        let reply = ReplyBody::encode(Encoding::Json, Err(RpcError::Failed("no".into())));
        let value: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"error": {"type": "Failed", "message": "no", "args": ["no"]}})
        );
        assert_eq!(reply.kind, MessageType::Error);
    }

    #[test]
    fn python_exceptions_become_failed() {
        let body = br#"{"error": {"type": "ValueError", "message": "ValueError('bad n')", "args": ["bad n"]}}"#;
        let properties = BasicProperties::default()
            .with_type("error".into())
            .with_content_type("application/json".into());
        assert_eq!(
            decode_reply(&properties, body.to_vec()),
            Err(RpcError::Failed("ValueError: bad n".into()))
        );
    }

    #[test]
    fn expired_requests_and_odd_replies() {
        let call = Call::new("a.b", Encoding::Json, b"{}".to_vec());
        let properties = request_properties(&call, "id", "q");
        assert_eq!(
            decode_reply(&properties, vec![]),
            Err(RpcError::DeadlineExceeded)
        );
        // The remaining time of a 30 s deadline, a moment after the call was made.
        let ms: u64 = properties
            .expiration()
            .as_ref()
            .and_then(|e| e.as_str().parse().ok())
            .expect("a numeric expiration");
        assert!((29_000..=30_000).contains(&ms), "{ms}");
        assert_eq!(from_header(&properties).as_deref(), Some("q"));
        let untyped = BasicProperties::default();
        assert!(matches!(
            decode_reply(&untyped, vec![]),
            Err(RpcError::Protocol(_))
        ));
        let mut death = FieldTable::default();
        death.insert("reason".into(), long_string("delivery_limit"));
        let mut headers = FieldTable::default();
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into()),
        );
        headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(3));
        let poison = properties.clone().with_headers(headers);
        assert_eq!(
            decode_reply(&poison, vec![]),
            Err(Error::PoisonTask {
                deliveries: Some(4)
            }
            .into())
        );
        let png = BasicProperties::default().with_content_type("image/png".into());
        assert!(matches!(
            parse_request("a.b", &png, vec![]),
            Err(Error::ContentType(t)) if t == "image/png"
        ));
    }
}
