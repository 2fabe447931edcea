//! The consumer and producer of rpc, their workloads and their shared options.
//!
//! # Layout
//! - [`workloads`]: `fibonacci_generator` and `neural_analyzer`, the handlers consumers run.
//! - [`producer`]: task generation, the bounded queue, the callers and their statistics.
//! - [`front_door`]: the producer's HTTP/JSON API, admission control and dashboard.
//! - [`http`]: serving HTTP with a connection cap and a header timeout.
//! - [`prometheus`]: the metrics recorder both apps install, and `/metrics`.
//! - [`cli`]: the options every binary shares, logging and signal handling.
//! - [`security`]: protected mode, the shared secret, TLS options, the front door's API keys.
//! - [`connect`]: the one place transport types are named, for `--transport tcp|amqp`.
//! - `src/bin/`: `consumer`, `producer` and the one-shot `call`: parse, build, run.

#![deny(missing_docs)]

pub mod cli;
pub mod connect;
pub mod front_door;
pub mod http;
pub mod producer;
pub mod prometheus;
pub mod security;
pub mod workloads;
