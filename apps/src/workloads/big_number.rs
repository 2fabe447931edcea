//! [`BigNumber`]: an arbitrary-precision integer that crosses every encoding exactly.

use std::fmt;
use std::str::FromStr;

use num_bigint::BigUint;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A non-negative integer of any size.
///
/// In JSON it is a plain integer (`55`, or a few thousand digits: Python reads it exactly); in
/// text, its decimal digits; in bincode, its little-endian bytes (no decimal conversion on the
/// Rust-to-Rust path).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BigNumber(pub BigUint);

impl fmt::Display for BigNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for BigNumber {
    type Err = num_bigint::ParseBigIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(BigNumber)
    }
}

impl From<u64> for BigNumber {
    fn from(n: u64) -> Self {
        BigNumber(BigUint::from(n))
    }
}

impl Serialize for BigNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            let digits =
                RawValue::from_string(self.0.to_string()).map_err(serde::ser::Error::custom)?;
            digits.serialize(serializer)
        } else {
            serializer.serialize_bytes(&self.0.to_bytes_le())
        }
    }
}

impl<'de> Deserialize<'de> for BigNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let raw = Box::<RawValue>::deserialize(deserializer)?;
            let digits = raw.get().trim_matches('"');
            digits.parse().map(BigNumber).map_err(D::Error::custom)
        } else {
            let bytes: serde_bytes::ByteBuf = Deserialize::deserialize(deserializer)?;
            Ok(BigNumber(BigUint::from_bytes_le(&bytes)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpc_core::encoding::{decode_result, encode_result};
    use rpc_core::Encoding;

    #[test]
    fn crosses_every_encoding_exactly() {
        let n: BigNumber = "354224848179261915075".parse().unwrap();
        for encoding in [Encoding::Bincode, Encoding::Json, Encoding::Text] {
            let bytes = encode_result(encoding, &n).unwrap();
            assert_eq!(decode_result::<BigNumber>(encoding, &bytes).unwrap(), n);
        }
        assert_eq!(
            encode_result(Encoding::Json, &n).unwrap(),
            b"354224848179261915075"
        );
        assert_eq!(
            encode_result(Encoding::Text, &n).unwrap(),
            b"354224848179261915075"
        );
    }
}
