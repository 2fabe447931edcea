//! [`Encoding`]: the three ways arguments and results travel, and the result codecs.

use std::fmt;
use std::str::FromStr;

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::RpcError;

/// How a call's arguments are encoded; the reply uses the same encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Encoding {
    /// The arguments as a positional tuple in bincode: Rust to Rust. The default.
    #[default]
    Bincode,
    /// The arguments as a JSON object keyed by parameter name (`{"n": 90}`), as aio-pika's
    /// JsonRPC sends kwargs; a JSON array of positional arguments is accepted too.
    Json,
    /// The seed's command tokens, split on spaces and parsed with `FromStr`; a final `String`
    /// parameter takes the rest of the line. The reply is the result as text.
    Text,
}

/// The content type that names bincode bodies on the AMQP wire.
pub const BINCODE_CONTENT_TYPE: &str = "application/x-rpc-bincode";

impl Encoding {
    /// The MIME type for this encoding: `application/x-rpc-bincode`, `application/json` or
    /// `text/plain`.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Bincode => BINCODE_CONTENT_TYPE,
            Encoding::Json => "application/json",
            Encoding::Text => "text/plain",
        }
    }

    /// The encoding a MIME type names, ignoring parameters such as `; charset=utf-8`.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            BINCODE_CONTENT_TYPE => Some(Encoding::Bincode),
            "application/json" => Some(Encoding::Json),
            "text/plain" => Some(Encoding::Text),
            _ => None,
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Bincode => "bincode",
            Encoding::Json => "json",
            Encoding::Text => "text",
        })
    }
}

impl FromStr for Encoding {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bincode" => Ok(Encoding::Bincode),
            "json" => Ok(Encoding::Json),
            "text" => Ok(Encoding::Text),
            other => Err(format!(
                "unknown encoding `{other}` (bincode, json or text)"
            )),
        }
    }
}

/// The bincode configuration every part of the framework uses: fixed-width integers, trailing
/// bytes allowed (argument decoding checks for them itself).
pub fn bincode_options() -> impl Options + Copy {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
}

/// Encodes `value` with [`bincode_options`].
///
/// # Errors
/// [`RpcError::Failed`] when the value cannot be serialized (a map with unsupported keys, say).
pub fn to_bincode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, RpcError> {
    bincode_options()
        .serialize(value)
        .map_err(|e| RpcError::Failed(format!("could not encode as bincode: {e}")))
}

/// Decodes a value encoded by [`to_bincode`].
///
/// # Errors
/// [`RpcError::Protocol`] when the bytes are not a valid encoding of `T`.
pub fn from_bincode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RpcError> {
    bincode_options()
        .deserialize(bytes)
        .map_err(|e| RpcError::Protocol(format!("undecodable bincode: {e}")))
}

/// Encodes a procedure's result in the caller's encoding.
///
/// Text renders the result's JSON form, except that a JSON string is written bare: a number
/// reads `55`, a sentence reads as itself.
///
/// # Errors
/// [`RpcError::Failed`] when the result cannot be serialized in that encoding.
pub fn encode_result<T: Serialize + ?Sized>(
    encoding: Encoding,
    value: &T,
) -> Result<Vec<u8>, RpcError> {
    match encoding {
        Encoding::Bincode => to_bincode(value),
        Encoding::Json => to_json(value),
        Encoding::Text => {
            let json = to_json(value)?;
            if json.first() == Some(&b'"') {
                let text: String = serde_json::from_slice(&json)
                    .map_err(|e| RpcError::Failed(format!("could not render result: {e}")))?;
                Ok(text.into_bytes())
            } else {
                Ok(json)
            }
        }
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, RpcError> {
    serde_json::to_vec(value)
        .map_err(|e| RpcError::Failed(format!("could not encode as JSON: {e}")))
}

/// Decodes a result that came back in `encoding`.
///
/// A text reply is read as JSON when it parses as `T` that way, else as a bare string.
///
/// # Errors
/// [`RpcError::Protocol`] when the reply is not a valid encoding of `T`.
pub fn decode_result<T: DeserializeOwned>(encoding: Encoding, bytes: &[u8]) -> Result<T, RpcError> {
    match encoding {
        Encoding::Bincode => from_bincode(bytes),
        Encoding::Json => serde_json::from_slice(bytes)
            .map_err(|e| RpcError::Protocol(format!("undecodable JSON result: {e}"))),
        Encoding::Text => serde_json::from_slice(bytes).or_else(|_| {
            let text = String::from_utf8_lossy(bytes);
            serde_json::from_value(serde_json::Value::String(text.into_owned()))
                .map_err(|e| RpcError::Protocol(format!("undecodable text result: {e}")))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip_in_every_encoding() {
        for encoding in [Encoding::Bincode, Encoding::Json, Encoding::Text] {
            let bytes = encode_result(encoding, &55u64).unwrap();
            assert_eq!(decode_result::<u64>(encoding, &bytes).unwrap(), 55);
            let bytes = encode_result(encoding, "hello world").unwrap();
            assert_eq!(
                decode_result::<String>(encoding, &bytes).unwrap(),
                "hello world"
            );
        }
    }

    #[test]
    fn text_results_are_bare() {
        assert_eq!(encode_result(Encoding::Text, "a b").unwrap(), b"a b");
        assert_eq!(encode_result(Encoding::Text, &-0.5f32).unwrap(), b"-0.5");
    }

    #[test]
    fn content_types_name_encodings() {
        for encoding in [Encoding::Bincode, Encoding::Json, Encoding::Text] {
            assert_eq!(
                Encoding::from_content_type(encoding.content_type()),
                Some(encoding)
            );
        }
        assert_eq!(
            Encoding::from_content_type("application/json; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::from_content_type("image/png"), None);
    }
}
