//! RPC over RabbitMQ through lapin, wire-compatible with aio-pika's `JsonRPC` pattern.
//!
//! Consumers compete for requests on one queue per procedure (`fibonacci_generator.calculate`);
//! a producer publishes each call there and its reply comes back on the producer's own reply
//! queue. Python services using `aio_pika.patterns.JsonRPC` and this crate call each other:
//! same queues, flags, properties and JSON bodies. Rust peers may also speak bincode, under
//! the content type `application/x-rpc-bincode`.
//!
//! ```
//! use std::sync::Arc;
//! use rpc_core::Registry;
//! use transport_amqp::{AmqpConfig, AmqpServer, AmqpTransport, AmqpUrl};
//!
//! struct Calc;
//!
//! #[rpc_core::handler]
//! impl Calc {
//!     /// Adds two numbers.
//!     pub fn add(a: i64, b: i64) -> i64 {
//!         a + b
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), rpc_core::RpcError> {
//! // `--amqp-url`, else AMQP_URL, else RABBITMQ_URL, else the local broker; quorum queues.
//! let config = AmqpConfig::new(AmqpUrl::resolve(None));
//!
//! // The consumer, serving as soon as `start` returns. An app's main would rather run
//! // `transport_amqp::serve(config, registry, shutdown)` until its Ctrl-C token fires.
//! let mut registry = Registry::new().with_workers(2);
//! registry.register(Calc);
//! let consumer = AmqpServer::start(config.clone(), Arc::new(registry)).await?;
//!
//! // The producer: a transport like any other.
//! let calc = CalcClient::new(AmqpTransport::connect(config).await?);
//! assert_eq!(calc.add(2, 3).await, Ok(5));
//!
//! // Finishes and answers the requests it holds, then returns.
//! consumer.shutdown().await;
//! # transport_amqp::delete_request_queues(&AmqpConfig::default(), &["calc.add".into()]).await?;
//! # Ok(()) }
//! ```
//!
//! # Wire
//! As aio-pika 9.6's `patterns/rpc.py`: a request queue per procedure with
//! `x-dead-letter-exchange: rpc.dlx`; a headers exchange `rpc.dlx` to which each client's
//! exclusive reply queue is bound by its `From` header, so that a request expiring in its
//! queue comes back to its caller (as `deadline exceeded`, at once); requests published
//! `mandatory` to the default exchange on a confirm-mode channel (a call nobody serves fails at
//! once with `unknown procedure`); `type` call/result/error, `correlation_id`, `reply_to`,
//! `expiration` = the remaining timeout in milliseconds (the tables are in `topology.rs` and
//! `message.rs`).
//!
//! Two topologies ([`Topology`]): **quorum**, the default, durable quorum request queues with a
//! delivery limit and persistent requests, replicated across a cluster and accepted by
//! RabbitMQ 4.3's defaults; **classic**, exactly aio-pika's defaults (non-durable classic
//! queues, transient requests), for older brokers and Python peers left on their defaults.
//! Every peer of a queue must use the same one.
//!
//! # Guarantees
//! - A request is acked after its reply is published, so a consumer that dies mid-task leaves
//!   it to another consumer (at-least-once execution).
//! - Both halves reconnect after a broker restart or the loss of their node of a cluster
//!   ([`AmqpUrl`] takes several nodes, comma-separated) and declare again what they need. A
//!   call in flight at that moment is not failed: it listens again for its reply or publishes
//!   its request again, within its deadline (at least once; it may run twice).
//! - In the quorum topology a request whose consumers all die running it is delivered at most
//!   [`AmqpConfig::delivery_limit`] more times, then its caller gets a "poison task" error.
//! - A procedure nobody serves fails at once with `UnknownProcedure`, except during
//!   [`AmqpConfig::reconnect_grace`] after a reconnection, when the request is published again
//!   every 100 ms (the consumers may not have declared their queues again yet).

//! # Layout
//! - `url.rs`: [`AmqpUrl`], the broker URL (or a cluster's) from flag, environment or
//!   default, shown without its password.
//! - `config.rs`: [`AmqpConfig`], URL, reply mode, [`Topology`], delivery limit, reconnection
//!   delays and graces, the largest request body a consumer decodes.
//! - `tls.rs`: [`AmqpTls`], the CA file, client certificate and `EXTERNAL` login of
//!   `amqps://` connections.
//! - `error.rs`: the crate's own errors by kind, turned into [`rpc_core::RpcError`] where they
//!   leave it.
//! - `topology.rs`: the queue and exchange declarations of each topology;
//!   [`delete_request_queues`] for tear-down.
//! - `message.rs`: request and reply properties, bodies in each encoding, the JSON error shape.
//! - `reconnect.rs`: connecting to the first node that answers, backoff between attempts.
//! - `client.rs`: [`AmqpTransport`], the client half, a [`rpc_core::Transport`].
//! - `server.rs`: [`serve`] and [`AmqpServer`], the server half, serving a
//!   [`rpc_core::Registry`] until a cancellation token fires.
//! - `pipeline.rs`: the consumer's prefetch pipeline of each queue, sized by Little's law from
//!   the round trips and run times it measures.
//! - `rpc.rs`: [`Rpc`], aio-pika's interface, `register` and `call`, on top of both.

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod acks;
mod client;
mod config;
mod error;
mod message;
mod pipeline;
mod reconnect;
mod rpc;
mod server;
mod tls;
mod topology;
mod url;

pub use client::AmqpTransport;
pub use config::{
    AmqpConfig, ReplyMode, Topology, DEFAULT_DELIVERY_LIMIT, DEFAULT_MAX_BODY,
    DEFAULT_MAX_PREFETCH_PIPELINE, DEFAULT_PREFETCH_PIPELINE,
};
pub use reconnect::connect_broker;
pub use rpc::Rpc;
pub use server::{serve, AmqpServer};
pub use tls::AmqpTls;
pub use topology::delete_request_queues;
pub use url::{AmqpUrl, DEFAULT_URL, URL_VARIABLES};

/// The content type of bincode bodies: `application/x-rpc-bincode`.
pub use rpc_core::encoding::BINCODE_CONTENT_TYPE;
