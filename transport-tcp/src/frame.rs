//! The binary wire: the messages each side sends, and the codecs that frame them.
//!
//! A frame is a 4-byte big-endian length, then that many bytes of bincode
//! ([`rpc_core::encoding::bincode_options`]: fixed-width little-endian integers). The crate
//! docs describe the layout byte by byte.

use std::marker::PhantomData;
use std::time::Duration;

use bincode::Options;
use bytes::{BufMut, BytesMut};
use rpc_core::encoding::bincode_options;
use rpc_core::{Call, Encoding, Reply, Request, RpcError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use crate::error::Error;
use crate::security::secret::NONCE_LEN;

/// The version of the binary protocol this crate speaks, exchanged in the handshake.
///
/// Version 2 added the `Cancel` message, version 3 the batch procedures in `Welcome`, version
/// 4 the shared secret's challenge and response (see the crate docs' wire table); a peer of
/// another version is refused in the handshake with a protocol error naming both versions.
pub const PROTOCOL_VERSION: u32 = 4;

/// Bytes in a frame's length prefix.
const LENGTH_BYTES: usize = 4;

/// What a producer sends a consumer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ClientMessage {
    /// The first frame on a connection: asks for the consumer's capacity.
    Hello {
        /// The producer's [`PROTOCOL_VERSION`].
        version: u32,
        /// The largest reply frame body the producer accepts; a larger reply becomes a
        /// protocol error reply.
        max_frame: u32,
    },
    /// A call to run.
    Request(Request),
    /// Asks for a [`ServerMessage::Pong`]: the producer's check that the consumer still
    /// answers.
    Ping,
    /// The caller of request `id` gave up: a call not yet started is never run, a running one
    /// is told to stop (its reply, if any, is not sent). An unknown id is ignored.
    Cancel {
        /// The request's id.
        id: u64,
    },
    /// The answer to [`ServerMessage::Challenge`]: the producer's nonce and its proof that it
    /// knows the shared secret (empty when it has none).
    Proof {
        /// The producer's random nonce.
        nonce: [u8; NONCE_LEN],
        /// HMAC-SHA256 over a label and both nonces, keyed by the shared secret.
        #[serde(with = "serde_bytes")]
        proof: Vec<u8>,
    },
}

/// The same layout as [`ClientMessage`], borrowing the call so that the producer serializes
/// it straight into the socket's buffer and can still send it again on another consumer.
#[derive(Serialize)]
enum ClientMessageRef<'a> {
    #[allow(dead_code)] // Only the variant index matters: it keeps `Request` at index 1.
    Hello {
        version: u32,
    },
    Request(RequestRef<'a>),
}

/// [`Request`] with its [`Call`] flattened and borrowed; bincode writes the same bytes.
#[derive(Serialize)]
struct RequestRef<'a> {
    id: u64,
    procedure: &'a str,
    encoding: Encoding,
    #[serde(with = "serde_bytes")]
    args: &'a [u8],
    /// The deadline as it goes on the wire (a [`rpc_core::Deadline`] is written as the time
    /// it has left), read off the clock once: the frame is serialized twice, once to size it.
    remaining: Duration,
}

/// What a consumer sends a producer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ServerMessage {
    /// The answer to [`ClientMessage::Hello`].
    Welcome(Welcome),
    /// The answer to one request.
    Reply(Reply),
    /// The connection is being closed because of this error (a protocol violation).
    Error(RpcError),
    /// The answer to [`ClientMessage::Ping`].
    Pong,
    /// The answer to [`ClientMessage::Hello`] from a consumer with a shared secret: the
    /// producer must prove it knows the secret before it gets its `Welcome`.
    Challenge {
        /// The consumer's random nonce.
        nonce: [u8; NONCE_LEN],
    },
}

/// The consumer's side of the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Welcome {
    /// The consumer's [`PROTOCOL_VERSION`].
    pub(crate) version: u32,
    /// How many synchronous procedures it runs at once: its capacity.
    pub(crate) workers: u32,
    /// The largest frame body it accepts, in bytes.
    pub(crate) max_frame: u32,
    /// Its batch procedures (those whose batches may hold more than one call), so that the
    /// pool lets enough of their calls wait there for batches to form (since version 3).
    pub(crate) batches: Vec<BatchSize>,
    /// The consumer's proof that it knows the shared secret, when it challenged the producer;
    /// empty otherwise (since version 4).
    #[serde(with = "serde_bytes")]
    pub(crate) proof: Vec<u8>,
}

/// A batch procedure and the most calls one of its batches takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BatchSize {
    /// `handler.method`.
    pub(crate) procedure: String,
    /// Its `#[batch(max = N)]`.
    pub(crate) max: u32,
}

/// A request as the producer encodes it: the call is borrowed from the caller, which keeps
/// it for a retry.
#[derive(Debug)]
pub(crate) struct Outgoing<'a> {
    pub(crate) id: u64,
    pub(crate) call: &'a Call,
}

impl Outgoing<'_> {
    fn as_message(&self) -> ClientMessageRef<'_> {
        ClientMessageRef::Request(RequestRef {
            id: self.id,
            procedure: &self.call.procedure,
            encoding: self.call.encoding,
            args: &self.call.args,
            remaining: self.call.deadline.remaining(),
        })
    }
}

/// Appends one frame (length prefix and bincode body) to `dst`, or nothing when the body
/// would exceed `max_frame`.
fn put_frame<T: Serialize + ?Sized>(
    message: &T,
    max_frame: usize,
    dst: &mut BytesMut,
) -> Result<(), Error> {
    let len = bincode_options()
        .serialized_size(message)
        .map_err(Error::Unencodable)?;
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > max_frame {
        return Err(Error::FrameTooLarge {
            len,
            limit: max_frame,
        });
    }
    let start = dst.len();
    dst.reserve(LENGTH_BYTES + len);
    dst.put_u32(len as u32);
    if let Err(e) = bincode_options().serialize_into(dst.writer(), message) {
        dst.truncate(start);
        return Err(Error::Unencodable(e));
    }
    Ok(())
}

/// Frames of `In` coming in and `Out` going out, bodies at most `max_frame` bytes.
///
/// Decoding fails with a framing [`Error`] on an oversized, truncated or undecodable frame,
/// and [`Error::Io`] when the socket fails.
#[derive(Debug)]
pub(crate) struct Codec<In, Out> {
    frames: LengthDelimitedCodec,
    /// The body length of the frame being received, once the length-delimited codec has
    /// consumed its prefix and until the whole body is in: an end of stream then cuts a frame
    /// short, even with no byte of its body buffered.
    partial: Option<usize>,
    max_frame: usize,
    max_encode: usize,
    _types: PhantomData<fn(Out) -> In>,
}

/// The consumer's codec.
pub(crate) type ServerCodec = Codec<ClientMessage, ServerMessage>;
/// The producer's codec.
pub(crate) type ClientCodec = Codec<ServerMessage, ClientMessage>;

impl<In, Out> Codec<In, Out> {
    /// Lowers the limit on frames this codec encodes (to what the peer accepts); the limit
    /// on frames it decodes stays.
    pub(crate) fn limit_encoding(&mut self, max_frame: usize) {
        self.max_encode = self.max_encode.min(max_frame);
    }

    /// A codec refusing frame bodies over `max_frame` bytes.
    pub(crate) fn new(max_frame: usize) -> Self {
        let max_frame = max_frame.min(u32::MAX as usize);
        let frames = LengthDelimitedCodec::builder()
            .length_field_length(LENGTH_BYTES)
            .big_endian()
            .max_frame_length(max_frame)
            .new_codec();
        Self {
            frames,
            partial: None,
            max_frame,
            max_encode: max_frame,
            _types: PhantomData,
        }
    }
}

impl<In: DeserializeOwned, Out> Decoder for Codec<In, Out> {
    type Item = In;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, Error> {
        let prefix = src
            .get(..LENGTH_BYTES)
            .and_then(|head| Some(u32::from_be_bytes(head.try_into().ok()?) as usize));
        // The length-delimited codec fails only on an oversized length prefix.
        match self.frames.decode(src) {
            Ok(Some(body)) => {
                self.partial = None;
                bincode_options()
                    .deserialize(&body)
                    .map(Some)
                    .map_err(Error::Undecodable)
            }
            Ok(None) => {
                // A whole prefix was there: the codec consumed it and waits for the body.
                self.partial = self.partial.or(prefix);
                Ok(None)
            }
            Err(_) => Err(Error::PrefixTooLarge {
                limit: self.max_frame,
            }),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<In>, Error> {
        match (self.decode(src)?, self.partial) {
            (Some(frame), _) => Ok(Some(frame)),
            (None, Some(len)) => Err(Error::TruncatedFrame {
                received: src.len(),
                len,
            }),
            (None, None) if src.is_empty() => Ok(None),
            (None, None) => Err(Error::TruncatedPrefix {
                received: src.len(),
                of: LENGTH_BYTES,
            }),
        }
    }
}

impl<In> Encoder<ServerMessage> for Codec<In, ServerMessage> {
    type Error = Error;

    /// A reply too large for the frame limit becomes a protocol error reply to the same id.
    fn encode(&mut self, item: ServerMessage, dst: &mut BytesMut) -> Result<(), Error> {
        match put_frame(&item, self.max_encode, dst) {
            Err(err @ Error::FrameTooLarge { .. }) => match item {
                ServerMessage::Reply(reply) => {
                    let reply = Reply::new(reply.id, Err(err.into()));
                    put_frame(&ServerMessage::Reply(reply), self.max_encode, dst)
                }
                _ => Err(err),
            },
            other => other,
        }
    }
}

impl<In> Encoder<ClientMessage> for Codec<In, ClientMessage> {
    type Error = Error;

    fn encode(&mut self, item: ClientMessage, dst: &mut BytesMut) -> Result<(), Error> {
        put_frame(&item, self.max_encode, dst)
    }
}

impl<In> Encoder<Outgoing<'_>> for Codec<In, ClientMessage> {
    type Error = Error;

    fn encode(&mut self, item: Outgoing, dst: &mut BytesMut) -> Result<(), Error> {
        put_frame(&item.as_message(), self.max_encode, dst)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rpc_core::ErrorKind;

    use super::*;

    #[test]
    fn borrowed_requests_encode_like_owned_ones() {
        let call = Call::new("calc.add", Encoding::Json, b"[1,2]".to_vec())
            // Past: both encodings then write the same remaining time (zero).
            .with_timeout(Duration::ZERO);
        let outgoing = Outgoing { id: 7, call: &call };
        let owned = ClientMessage::Request(Request {
            id: 7,
            call: call.clone(),
        });
        let mut a = BytesMut::new();
        let mut b = BytesMut::new();
        ClientCodec::new(1 << 20).encode(outgoing, &mut a).unwrap();
        ClientCodec::new(1 << 20).encode(owned, &mut b).unwrap();
        assert_eq!(a, b);
        match ServerCodec::new(1 << 20).decode(&mut a).unwrap() {
            Some(ClientMessage::Request(r)) => assert_eq!(r.call.procedure, "calc.add"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hello_starts_with_a_zero_byte() {
        let mut buf = BytesMut::new();
        let hello = ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            max_frame: 1 << 24,
        };
        ClientCodec::new(1 << 20).encode(hello, &mut buf).unwrap();
        assert_eq!(&buf[..], &[0, 0, 0, 12, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn oversized_replies_become_protocol_errors() {
        let mut codec = ServerCodec::new(128);
        let mut buf = BytesMut::new();
        let reply = Reply::new(3, Ok(vec![0; 200]));
        codec.encode(ServerMessage::Reply(reply), &mut buf).unwrap();
        let mut client = ClientCodec::new(128);
        match client.decode(&mut buf).unwrap() {
            Some(ServerMessage::Reply(r)) => {
                assert_eq!(r.id, 3);
                assert!(matches!(r.result, Err(RpcError::Protocol(_))));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oversized_and_garbage_frames_are_protocol_errors() {
        let mut codec = ServerCodec::new(64);
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 1][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(Error::PrefixTooLarge { limit: 64 })
        ));
        let mut buf = BytesMut::from(&[0, 0, 0, 2, 9, 9][..]);
        assert!(matches!(
            ServerCodec::new(64).decode(&mut buf),
            Err(Error::Undecodable(_))
        ));
        // Every one of them reaches the peer as a protocol error.
        let err = RpcError::from(Error::PrefixTooLarge { limit: 64 });
        assert_eq!(err.kind(), rpc_core::ErrorKind::Protocol);
    }

    #[test]
    fn the_end_of_stream_inside_a_frame_is_a_protocol_error() {
        // A length prefix alone, a prefix and part of its body, part of a prefix.
        for (bytes, expected) in [
            (&[0, 0, 0, 9][..], (Some(9), 0)),
            (&[0, 0, 0, 9, 1, 2][..], (Some(9), 2)),
            (&[0, 0][..], (None, 2)),
        ] {
            let mut codec = ServerCodec::new(64);
            let mut buf = BytesMut::from(bytes);
            assert!(matches!(codec.decode(&mut buf), Ok(None)));
            let got = match codec.decode_eof(&mut buf) {
                Err(Error::TruncatedFrame { received, len }) => (Some(len), received),
                Err(Error::TruncatedPrefix { received, of: 4 }) => (None, received),
                other => panic!("{bytes:?}: {other:?}"),
            };
            assert_eq!(got, expected, "{bytes:?}");
        }
        // Between frames, the end of the stream is a clean end.
        let mut buf = BytesMut::new();
        ClientCodec::new(64)
            .encode(ClientMessage::Ping, &mut buf)
            .unwrap();
        let mut codec = ServerCodec::new(64);
        assert!(matches!(
            codec.decode(&mut buf),
            Ok(Some(ClientMessage::Ping))
        ));
        assert!(matches!(codec.decode_eof(&mut buf), Ok(None)));
    }

    /// 10,000 cases per property by default; `RPC_PROPTEST_CASES` for more.
    fn cases() -> u32 {
        std::env::var("RPC_PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000)
    }

    /// Feeds `bytes` to a codec as a peer would, then closes: every frame is a message or a
    /// protocol error, never a panic.
    fn drain<In: serde::de::DeserializeOwned>(bytes: &[u8], max_frame: usize) {
        let mut codec = Codec::<In, ServerMessage>::new(max_frame);
        let mut buffer = BytesMut::from(bytes);
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(Error::Io(err)) => panic!("decoder answered {err:?}"),
                Err(err) => return assert_eq!(RpcError::from(err).kind(), ErrorKind::Protocol),
            }
        }
        match codec.decode_eof(&mut buffer).map_err(RpcError::from) {
            Ok(_) | Err(RpcError::Protocol(_)) => {}
            Err(other) => panic!("decoder answered {other:?} at the end"),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(cases()))]

        #[test]
        fn the_frame_decoder_never_panics(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            max_frame in 0usize..256,
        ) {
            drain::<ClientMessage>(&bytes, max_frame);
            drain::<ServerMessage>(&bytes, max_frame);
        }

        #[test]
        fn length_prefixed_garbage_never_panics(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let mut framed = (body.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(&body);
            drain::<ClientMessage>(&framed, 1024);
            drain::<ServerMessage>(&framed, 1024);
        }
    }
}
