//! Who may call: protected mode (no listener off loopback without security, unless told to
//! accept the risk), the shared secret of TCP peers, their TLS files, and the front door's API
//! keys. Secrets are read from files or the environment, never from command-line values that
//! `ps` shows, and never appear in logs, `Debug` output or error messages.
//!
//! # Layout
//! - `protected`: protected mode, the refusal to listen off loopback unsecured.
//! - `secret`: the shared secret ([`Secret`]), from `RPC_SECRET_FILE` or `RPC_SECRET`.
//! - `tls`: the TCP transport's TLS options of each binary.
//! - `api_keys`: the front door's bearer-token API keys ([`ApiKeys`]), reloaded on SIGHUP.

mod api_keys;
mod protected;
mod secret;
mod tls;

pub use api_keys::{reload_on_sighup, ApiKeys, MIN_KEY_LEN};
pub use protected::{is_loopback, Protection};
pub use secret::{Secret, SECRET_ENV, SECRET_FILE_ENV};
pub use tls::{ConsumerTls, ProducerTls, TransportSecurity};
