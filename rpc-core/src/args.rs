//! Decoding a call's arguments from any of the three encodings, one named parameter at a time.
//!
//! The code that `#[handler]` generates drives an [`Arguments`] decoder: `next` for each
//! parameter in order (`rest` for a final `String` in text mode), then `finish`. Every error
//! is [`RpcError::BadArguments`] and names the parameter it is about.

use std::collections::VecDeque;
use std::fmt::Display;
use std::str::FromStr;

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::encoding::bincode_options;
use crate::{Encoding, RpcError};

/// A type a procedure can take as a parameter: it decodes from bincode and JSON (serde) and
/// from a text token (`FromStr`), and the typed client can encode it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a procedure parameter: it must implement serde's Serialize and Deserialize, and FromStr with a Display error",
    label = "this parameter cannot be decoded from the wire",
    note = "procedure parameters arrive as bincode, JSON or text, so each must decode from all three"
)]
pub trait Argument: Serialize + DeserializeOwned + Send + 'static {
    /// Parses one text token (or, for a final `String`, the rest of the line).
    ///
    /// # Errors
    /// The `FromStr` error's message.
    fn parse_text(text: &str) -> Result<Self, String>;
}

impl<T> Argument for T
where
    T: Serialize + DeserializeOwned + FromStr + Send + 'static,
    T::Err: Display,
{
    fn parse_text(text: &str) -> Result<Self, String> {
        text.parse::<T>().map_err(|e| e.to_string())
    }
}

/// A decoder over one call's encoded arguments.
#[derive(Debug)]
pub struct Arguments<'a> {
    params: &'static [&'static str],
    taken: usize,
    source: Source<'a>,
}

#[derive(Debug)]
enum Source<'a> {
    Bincode(&'a [u8]),
    Object(Map<String, Value>),
    Array(VecDeque<Value>),
    Text(&'a str),
}

impl<'a> Arguments<'a> {
    /// Starts decoding `bytes`, encoded as `encoding`, for a procedure whose parameters are
    /// `params` (in order).
    ///
    /// # Errors
    /// [`RpcError::BadArguments`] when the bytes are not JSON (for JSON) or UTF-8 (for text).
    pub fn new(
        encoding: Encoding,
        bytes: &'a [u8],
        params: &'static [&'static str],
    ) -> Result<Self, RpcError> {
        let source = match encoding {
            Encoding::Bincode => Source::Bincode(bytes),
            Encoding::Json => json_source(bytes)?,
            Encoding::Text => Source::Text(std::str::from_utf8(bytes).map_err(|_| {
                RpcError::BadArguments("text arguments are not valid UTF-8".into())
            })?),
        };
        Ok(Self {
            params,
            taken: 0,
            source,
        })
    }

    /// Decodes the next parameter, `name`.
    ///
    /// # Errors
    /// [`RpcError::BadArguments`] naming `name` when it is missing or does not decode as `T`.
    pub fn next<T: Argument>(&mut self, name: &str) -> Result<T, RpcError> {
        self.taken += 1;
        match &mut self.source {
            Source::Bincode(rest) => {
                if rest.is_empty() {
                    return Err(self.missing(name));
                }
                // The limit stops a forged length prefix from allocating more than we hold.
                bincode_options()
                    .with_limit(rest.len() as u64)
                    .deserialize_from(rest)
                    .map_err(|e| bad(name, e))
            }
            Source::Object(map) => match map.remove(name) {
                Some(value) => serde_json::from_value(value).map_err(|e| bad(name, e)),
                None => Err(self.missing(name)),
            },
            Source::Array(values) => match values.pop_front() {
                Some(value) => serde_json::from_value(value).map_err(|e| bad(name, e)),
                None => Err(self.missing(name)),
            },
            Source::Text(rest) => {
                let trimmed = rest.trim_start();
                let end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
                let (token, after) = trimmed.split_at(end);
                *rest = after;
                if token.is_empty() {
                    return Err(self.missing(name));
                }
                T::parse_text(token).map_err(|e| bad(name, e))
            }
        }
    }

    /// Decodes the last parameter, `name`: in text mode it takes the rest of the line, spaces
    /// included; in the other encodings it is the same as [`Arguments::next`].
    ///
    /// # Errors
    /// As [`Arguments::next`].
    pub fn rest<T: Argument>(&mut self, name: &str) -> Result<T, RpcError> {
        let Source::Text(rest) = &mut self.source else {
            return self.next(name);
        };
        self.taken += 1;
        let line = rest.trim_start().trim_end_matches(['\r', '\n']);
        *rest = "";
        if line.is_empty() {
            return Err(self.missing(name));
        }
        T::parse_text(line).map_err(|e| bad(name, e))
    }

    /// Checks that nothing is left over once every parameter was decoded.
    ///
    /// # Errors
    /// [`RpcError::BadArguments`] saying how many arguments the procedure takes, or naming
    /// the unexpected keyword.
    pub fn finish(self) -> Result<(), RpcError> {
        let extra = match &self.source {
            Source::Bincode(rest) => !rest.is_empty(),
            Source::Array(values) => !values.is_empty(),
            Source::Text(rest) => !rest.trim().is_empty(),
            Source::Object(map) => {
                if let Some(key) = map.keys().next() {
                    return Err(RpcError::BadArguments(format!(
                        "unexpected parameter `{key}`; expected {}",
                        self.signature()
                    )));
                }
                false
            }
        };
        if extra {
            return Err(RpcError::BadArguments(format!(
                "too many arguments; expected {}",
                self.signature()
            )));
        }
        Ok(())
    }

    fn missing(&self, name: &str) -> RpcError {
        RpcError::BadArguments(format!(
            "missing parameter `{name}` (argument {} of {}; expected {})",
            self.taken,
            self.params.len(),
            self.signature()
        ))
    }

    fn signature(&self) -> String {
        match self.params.len() {
            0 => "no arguments".to_string(),
            1 => format!("1 argument ({})", self.params[0]),
            n => format!("{n} arguments ({})", self.params.join(", ")),
        }
    }
}

fn json_source(bytes: &[u8]) -> Result<Source<'_>, RpcError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Source::Object(Map::new()));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(Source::Object(map)),
        Ok(Value::Array(values)) => Ok(Source::Array(values.into())),
        Ok(other) => Err(RpcError::BadArguments(format!(
            "JSON arguments must be an object keyed by parameter name, got {other}"
        ))),
        Err(e) => Err(RpcError::BadArguments(format!(
            "JSON arguments do not parse: {e}"
        ))),
    }
}

fn bad(name: &str, err: impl Display) -> RpcError {
    RpcError::BadArguments(format!("parameter `{name}`: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::to_bincode;

    const PARAMS: &[&str] = &["n", "text"];

    fn decode(encoding: Encoding, bytes: &[u8]) -> Result<(u64, String), RpcError> {
        let mut args = Arguments::new(encoding, bytes, PARAMS)?;
        let n = args.next("n")?;
        let text = args.rest("text")?;
        args.finish()?;
        Ok((n, text))
    }

    #[test]
    fn decodes_all_three_encodings() {
        let want = (7, "a b c".to_string());
        let bin = to_bincode(&(7u64, "a b c")).unwrap();
        assert_eq!(decode(Encoding::Bincode, &bin).unwrap(), want);
        let json = br#"{"text": "a b c", "n": 7}"#;
        assert_eq!(decode(Encoding::Json, json).unwrap(), want);
        assert_eq!(decode(Encoding::Json, br#"[7, "a b c"]"#).unwrap(), want);
        assert_eq!(decode(Encoding::Text, b"7 a b c\n").unwrap(), want);
    }

    fn bad_args(result: Result<(u64, String), RpcError>) -> String {
        match result {
            Err(RpcError::BadArguments(m)) => m,
            other => panic!("expected bad arguments, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_parameter() {
        assert!(bad_args(decode(Encoding::Text, b"x y")).contains("`n`"));
        assert!(bad_args(decode(Encoding::Text, b"7")).contains("missing parameter `text`"));
        assert!(bad_args(decode(Encoding::Json, br#"{"n": "x", "text": ""}"#)).contains("`n`"));
        assert!(bad_args(decode(Encoding::Json, br#"{"n": 1}"#)).contains("`text`"));
        let extra = bad_args(decode(Encoding::Json, br#"{"n": 1, "text": "t", "z": 0}"#));
        assert!(extra.contains("unexpected parameter `z`"), "{extra}");
        let bin = to_bincode(&(7u64,)).unwrap();
        assert!(bad_args(decode(Encoding::Bincode, &bin)).contains("`text`"));
        let bin = to_bincode(&(7u64, "t", 9u8)).unwrap();
        assert!(bad_args(decode(Encoding::Bincode, &bin)).contains("too many arguments"));
    }

    #[test]
    fn a_forged_length_prefix_does_not_allocate() {
        let mut bin = 7u64.to_le_bytes().to_vec();
        bin.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(bad_args(decode(Encoding::Bincode, &bin)).contains("`text`"));
    }
}
