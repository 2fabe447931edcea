//! The consumer and producer of rpc, their workloads and their shared options.
//!
//! # Layout
//! - [`workloads`]: `fibonacci_generator` and `neural_analyzer`, the handlers consumers run.
//! - [`producer`]: task generation, the bounded queue, the callers and their statistics.
//! - [`cli`]: the options every binary shares, logging and signal handling.
//! - [`connect`]: the one place transport types are named, for `--transport tcp|amqp`.
//! - `src/bin/`: `consumer`, `producer` and the one-shot `call`: parse, build, run.

#![deny(missing_docs)]

pub mod cli;
pub mod connect;
pub mod producer;
pub mod workloads;
