//! Who may use a consumer, and who a producer trusts: TLS ([`ServerTls`], [`ClientTls`]) and
//! a shared secret checked by challenge and response ([`SharedSecret`]), each usable alone or
//! both at once; [`SecurityError`] when their files or values are unusable.

use std::path::PathBuf;

pub(crate) mod secret;
pub(crate) mod tls;

pub use secret::SharedSecret;
pub use tls::{ClientTls, ServerTls};

/// Why a certificate, key or secret could not be loaded. No variant carries a secret's or a
/// key's bytes: the messages name files and what is wrong with them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file (or buffer) holds no certificate.
    #[error("no certificate in {0} (expected PEM: -----BEGIN CERTIFICATE-----)")]
    NoCertificate(String),
    /// A PEM file (or buffer) holds no private key, or one that cannot be parsed.
    #[error("no usable private key in {0} (expected PEM: PKCS#8, PKCS#1 or SEC1)")]
    NoKey(String),
    /// A PEM file (or buffer) that is not PEM.
    #[error("{what} is not valid PEM: {message}")]
    Pem {
        /// The file, or `certificate`/`key` for a buffer.
        what: String,
        /// The parser's complaint.
        message: String,
    },
    /// rustls refused the certificates or key (a key that does not match its certificate, a
    /// CA certificate it cannot use).
    #[error("TLS configuration refused: {0}")]
    Tls(String),
    /// A server name that is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// A shared secret shorter than [`SharedSecret::MIN_LEN`] bytes.
    #[error("the shared secret has {len} bytes; at least {min} are required")]
    SecretTooShort {
        /// Its length.
        len: usize,
        /// [`SharedSecret::MIN_LEN`].
        min: usize,
    },
}
