//! The TCP transport of the rpc framework: a producer connects straight to each consumer's
//! port, with no broker.
//!
//! - The serving half, on a consumer ([`serve`], [`TcpServer`]), serves a
//!   [`rpc_core::Registry`] in two modes told apart by the first byte: multiplexed bincode
//!   frames for Rust producers, and the seed's one-line text commands for `nc` and the seed's
//!   Python clients.
//! - The calling half, on the producer ([`TcpTransport`]), is one [`rpc_core::Transport`]
//!   that pools many consumers: it learns each one's capacity, sends each call to the least
//!   loaded, takes a consumer that fails out of rotation and probes it back, and retries a
//!   call whose connection broke (at-least-once).
//!
//! ```
//! use std::sync::Arc;
//! use rpc_core::Registry;
//! use transport_tcp::{TcpServer, TcpServerConfig, TcpTransport, TcpTransportConfig};
//!
//! /// Sums on request.
//! pub struct Calc;
//!
//! #[rpc_core::handler]
//! impl Calc {
//!     /// Adds two numbers.
//!     pub fn add(a: i64, b: i64) -> i64 {
//!         a + b
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The consumer, on a free port.
//! let mut registry = Registry::new().with_workers(2);
//! registry.register(Calc);
//! let server = TcpServer::bind("127.0.0.1:0", registry, TcpServerConfig::default()).await?;
//!
//! // The producer: a pool over one or more consumer addresses.
//! let addrs = [server.local_addr().to_string()];
//! let transport = TcpTransport::new(addrs, TcpTransportConfig::default())?;
//! let calc = CalcClient::new(transport);
//! assert_eq!(calc.add(40, 2).await?, 42);
//!
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Wire format
//!
//! **Binary mode.** Every message is a frame: a 4-byte big-endian body length, then the body
//! in bincode with [`rpc_core::encoding::bincode_options`] (fixed-width little-endian
//! integers; an enum is its variant index as a `u32`, then its fields; a string or byte
//! buffer is a `u64` length, then its bytes; a `Duration` is `u64` seconds, `u32` nanos).
//! Bodies are at most 16 MiB by default ([`DEFAULT_MAX_FRAME`], which is
//! [`rpc_core::DEFAULT_MAX_MESSAGE`]; [`TcpServerConfig::max_frame`]); a larger one is
//! answered with an `Error` message and the connection is closed.
//!
//! | producer sends | variant | fields |
//! |---|---|---|
//! | `Hello` | 0 | `version: u32` ([`PROTOCOL_VERSION`], 4), `max_frame: u32` (the largest reply body it accepts) |
//! | `Request` | 1 | `id: u64`, then the [`rpc_core::Call`]: `procedure: string`, `encoding: u32` (0 bincode, 1 JSON, 2 text), `args: bytes`, `deadline: Duration` (the time left until the caller's [`rpc_core::Deadline`]) |
//! | `Ping` | 2 | none: asks for a `Pong` ([`TcpTransportConfig::heartbeat_interval`]) |
//! | `Cancel` | 3 | `id: u64`: the caller gave up on that request (since version 2) |
//! | `Proof` | 4 | `nonce: [u8; 32]` (the producer's, random), `proof: bytes` (HMAC-SHA256 keyed by the shared secret over `"rpc producer proof v1"`, the consumer's nonce, the producer's nonce; empty when the producer has no secret): the answer to `Challenge` (since version 4) |
//!
//! | consumer sends | variant | fields |
//! |---|---|---|
//! | `Welcome` | 0 | `version: u32`, `workers: u32` (its capacity), `max_frame: u32`, `batches`: a `u64` count, then for each batch procedure `procedure: string`, `max: u32` (its `#[batch(max = N)]`; since version 3), `proof: bytes` (the consumer's HMAC over `"rpc consumer proof v1"` and both nonces when it challenged the producer, else empty; since version 4) |
//! | `Reply` | 1 | `id: u64`, then `Result`: variant 0 `Ok(bytes)` (the result in the call's encoding) or 1 `Err(RpcError)` ([`rpc_core::RpcError`]'s variant index, then its message string if it has one) |
//! | `Error` | 2 | an `RpcError`: why the consumer is closing the connection (protocol violation) |
//! | `Pong` | 3 | none: the answer to `Ping`, from the connection's task (not a worker) |
//! | `Challenge` | 4 | `nonce: [u8; 32]` (the consumer's, random): the answer to `Hello` from a consumer with a shared secret (since version 4) |
//!
//! The handshake: the producer's first frame is `Hello` (`00 00 00 0c  00 00 00 00  04 00 00 00`
//! then its limit: a binary connection starts with a zero byte); the consumer answers
//! `Welcome`, or `Error` and closes for another version ("protocol version 3 is not supported;
//! this consumer speaks 4"). A consumer with a shared secret answers `Challenge` instead; the
//! producer sends `Proof`; the consumer checks it (in constant time) and sends `Welcome` with
//! its own proof, which the producer checks, or `Error` ("authentication failed: ...") and
//! closes. Until then any other frame is refused with `Error` and nothing of it runs. Each side then refuses to send a
//! frame larger than the other accepts: an oversized request fails at the producer with
//! [`rpc_core::RpcError::Protocol`], an oversized reply is replaced by that error. Then the
//! producer sends `Request`s with ids of its choosing, many in flight; the consumer runs them
//! side by side and sends each `Reply` as soon as its call finishes, so replies come back in
//! any order.
//!
//! **Versions.** 1: the first. 2: `Cancel`. 3: `Welcome` lists the batch procedures, so that
//! the pool lets two batches per worker of their calls wait on the consumer (one running, the
//! next one filling) instead of `queued_per_consumer`. 4: the shared secret's `Challenge` and
//! `Proof`, and `Welcome.proof`.
//!
//! **Cancellation.** When a caller drops a call it sent (its [`rpc_core::Client`]'s deadline
//! passed, or the caller's future was dropped), the [`TcpTransport`] sends `Cancel` with its id. The
//! consumer cancels it at once: a call still waiting for a worker is never run, a running
//! synchronous procedure that takes a [`rpc_core::Cancellation`] sees it fire and can stop
//! early, and no `Reply` is sent for it. A `Cancel` for an id not in flight is ignored.
//!
//! **Text mode** (the first byte is not zero): `handler method arg1 arg2 ...` (or
//! `handler.method ...`) ending at a newline, at the end of the stream, or after a pause of
//! [`TcpServerConfig::text_pause`]; the consumer answers the result as text, or
//! `ERROR <kind>: <message>`, then a newline, and closes the connection:
//!
//! ```text
//! $ printf 'calc add 40 2\n' | nc 127.0.0.1 9000
//! 42
//! ```
//!
//! **TLS.** With [`TcpServerConfig::tls`], a connection's first byte must be a TLS handshake
//! record (0x16); all of the above then runs inside TLS. A plain binary client gets an `Error`
//! frame and a text client an `ERROR` line saying TLS is required; a TLS client on a plain
//! consumer gets an `ERROR` line, which its TLS library reports as a reply that is not TLS.
//!
//! # Security
//! TLS ([`ServerTls`], [`ClientTls`]: rustls with the ring provider, optional client
//! certificates) and a shared secret ([`SharedSecret`], proved by challenge and response: it
//! never crosses the wire), alone or together:
//!
//! ```no_run
//! use transport_tcp::{ClientTls, ServerTls, SharedSecret, TcpServerConfig, TcpTransportConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The consumer: its certificate and key; only producers whose certificate the producers' CA
//! // signed (mutual TLS, optional); and the shared secret, from a file (or the environment).
//! let mut consumer = TcpServerConfig::default();
//! consumer.tls = Some(ServerTls::from_pem_files("consumer1.crt", "consumer1.key")?
//!     .require_client_certificates("producers-ca.crt")?);
//! consumer.secret = Some(SharedSecret::from_file("/etc/rpc/secret")?);
//!
//! // The producer: the CA that signed the consumers' certificates, its own certificate for
//! // consumers that require one, the same secret.
//! let mut producer = TcpTransportConfig::default();
//! producer.tls = Some(ClientTls::from_ca_file("consumers-ca.crt")?
//!     .with_certificate_files("producer.crt", "producer.key")?);
//! producer.secret = Some(SharedSecret::new(std::env::var("RPC_SECRET")?)?);
//! # Ok(()) }
//! ```
//!
//! A peer refused in the TLS handshake or the challenge runs nothing; the consumer logs one
//! line for it (never the secret), and the pool keeps its reason as the consumer's
//! [`ConsumerStatus::last_error`], which its calls' [`rpc_core::RpcError::NoConsumer`] names.
//! Text commands carry no proof: with a secret they are refused unless
//! [`TcpServerConfig::allow_text_without_secret`].
//!
//! # Guarantees
//! - A consumer serves at most [`TcpServerConfig::max_connections`] connections; a client that
//!   sends nothing is dropped after [`TcpServerConfig::handshake_timeout`], a text client that
//!   never finishes its command after [`TcpServerConfig::text_timeout`], a silent binary
//!   connection after [`TcpServerConfig::idle_timeout`], one that does not read its replies after
//!   [`TcpServerConfig::write_timeout`]. Each connection is served by a task of its own: none of
//!   them stalls the others.
//! - On shutdown a consumer stops accepting and reading, answers every call it already read,
//!   then closes. A producer sends the calls it had not yet got an answer for again elsewhere.
//! - Calls through a [`TcpTransport`] are delivered **at least once**: see [`TcpTransport`].
//!
//! # Runtime settings
//! Measured on the project's 2-core machines (`docs/benchmarks.md`): run the producer on a
//! current-thread runtime (`#[tokio::main(flavor = "current_thread")]`); a multi-threaded one
//! more than halves pipelined throughput, its calls waking each other across threads. For a
//! consumer neither flavour wins clearly: its synchronous procedures run on tokio's blocking
//! threads, `workers` at a time, whatever the flavour, which only carries the network.
//!
//! # Layout
//! Shared by both halves at the top, then one wing per half:
//!
//! ```text
//! config.rs          TcpServerConfig, TcpTransportConfig: every limit with its default
//! security.rs        SecurityError; TLS and the shared secret:
//! security/tls.rs      ServerTls, ClientTls: PEM loading, rustls configs, failures in words
//! security/secret.rs   SharedSecret, nonces and the HMAC proofs
//! frame.rs           the messages above and the codec that frames them
//! error.rs           the crate's internal errors by kind, made RpcError where they leave it
//! server.rs          the serving half: serve, TcpServer (accepting, limits, shutdown, the modes)
//! server/context.rs    what the connections of one server share
//! server/binary.rs     one binary connection: a session (handshake, frames, replies, idleness)
//! server/text.rs       one text command
//! server/linger.rs     closing without losing the last answer
//! server/refuse.rs     plain clients on a TLS consumer, TLS clients on a plain one
//! pool.rs            the calling half: TcpTransport, a pool over many consumers, retrying
//! pool/balance.rs      which consumer takes a call, or its place in the line
//! pool/supervisor.rs   keeps each consumer connected, probing a lost one with backoff
//! pool/connection.rs   one connection: handshake, ids, pending calls, Cancel
//! pool/writer.rs       its write side, batching requests in flight side by side
//! pool/status.rs       ConsumerStatus
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod config;
mod error;
mod frame;
mod pool;
mod security;
mod server;

pub use config::{TcpServerConfig, TcpTransportConfig, DEFAULT_MAX_FRAME};
pub use frame::PROTOCOL_VERSION;
pub use pool::{ConsumerStatus, TcpTransport};
pub use security::{ClientTls, SecurityError, ServerTls, SharedSecret};
pub use server::{serve, TcpServer};
