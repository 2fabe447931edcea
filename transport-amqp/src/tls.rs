//! [`AmqpTls`]: how an `amqps://` connection verifies its broker and proves who it is.
//!
//! The broker's certificate is verified against the public web roots (webpki) and, when
//! [`AmqpTls::ca_file`] is given, the CA certificates of that PEM file: a broker whose
//! certificate a private CA signed is then trusted. A client certificate and key
//! ([`AmqpTls::client_identity`]) are presented when the broker asks for one
//! (`ssl_options.verify = verify_peer`); with [`AmqpTls::external_auth`] the client logs in
//! with SASL `EXTERNAL`, the broker taking the user name from that certificate
//! (`auth_mechanisms.1 = EXTERNAL`, plugin `rabbitmq_auth_mechanism_ssl`), and no password
//! crosses the wire.
//!
//! The files are read at each connection attempt, so certificates renewed on disk are picked
//! up by the next reconnection. Their contents never appear in `Debug` output, logs or errors:
//! only their paths.

use std::fmt;
use std::path::{Path, PathBuf};

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::Error;

/// The TLS settings of `amqps://` connections. The default trusts the public web roots only,
/// presents no client certificate and logs in with the URL's user and password (`PLAIN`).
///
/// ```
/// use transport_amqp::{AmqpConfig, AmqpTls};
///
/// let tls = AmqpTls::default()
///     .with_ca_file("/etc/rpc/ca.pem")
///     .with_client_identity("/etc/rpc/client.pem", "/etc/rpc/client.key")
///     .with_external_auth(true);
/// let config = AmqpConfig::new("amqps://broker.example:5671/%2f").with_tls(tls);
/// // Paths only: no key material is ever held in the configuration.
/// assert!(format!("{config:?}").contains("/etc/rpc/client.key"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AmqpTls {
    /// A PEM file of CA certificates trusted for the broker's certificate, beside the public
    /// web roots (e.g. the company CA that signed the broker's). Default: none.
    pub ca_file: Option<PathBuf>,
    /// The client's certificate chain (PEM) and private key (PEM: PKCS#8, PKCS#1 or SEC1,
    /// unencrypted), presented when the broker asks for one. Default: none.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// Log in with SASL `EXTERNAL` (the broker takes the user from the client certificate)
    /// instead of the URL's user and password. Needs [`AmqpTls::client_identity`].
    /// Default: `false`.
    pub external_auth: bool,
}

impl AmqpTls {
    /// The same settings, also trusting the CA certificates of the PEM file `path`.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// The same settings with a client certificate chain and its private key (PEM files).
    pub fn with_client_identity(
        mut self,
        certificate: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.client_identity = Some((certificate.into(), key.into()));
        self
    }

    /// The same settings, logging in with SASL `EXTERNAL` (or not).
    pub fn with_external_auth(mut self, external: bool) -> Self {
        self.external_auth = external;
        self
    }

    /// Reads the files into lapin's TLS configuration, checking each: a CA file with no
    /// certificate, or a key that is not one, is refused here rather than failing later as a
    /// handshake error that names no file.
    pub(crate) fn load(&self) -> Result<OwnedTLSConfig, Error> {
        if self.external_auth && self.client_identity.is_none() {
            return Err(Error::Tls(
                "EXTERNAL authentication needs a client certificate and key".into(),
            ));
        }
        let cert_chain =
            match &self.ca_file {
                Some(path) => {
                    let pem = read(path, "CA file")?;
                    certificates(&pem, path, "CA file")?;
                    Some(String::from_utf8(pem).map_err(|_| {
                        Error::Tls(format!("CA file {}: not PEM text", path.display()))
                    })?)
                }
                None => None,
            };
        let identity = match &self.client_identity {
            Some((certificate, key)) => {
                let pem = read(certificate, "client certificate")?;
                certificates(&pem, certificate, "client certificate")?;
                let key_pem = read(key, "client key")?;
                // The parser's error says what is wrong, never what the file holds.
                PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                    Error::Tls(format!(
                        "client key {}: no private key ({e})",
                        key.display()
                    ))
                })?;
                Some(OwnedIdentity::PKCS8 { pem, key: key_pem })
            }
            None => None,
        };
        Ok(OwnedTLSConfig {
            identity,
            cert_chain,
        })
    }
}

/// Reads the file `path`, the `what` of the TLS settings.
fn read(path: &Path, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|e| Error::Tls(format!("{what} {}: cannot read it: {e}", path.display())))
}

/// Checks that `pem` holds at least one certificate, all of them readable.
fn certificates(pem: &[u8], path: &Path, what: &str) -> Result<(), Error> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("{what} {}: {e}", path.display())))?;
    if certificates.is_empty() {
        return Err(Error::Tls(format!(
            "{what} {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(())
}

impl fmt::Debug for AmqpTls {
    /// The paths and the mechanism: never what the files hold.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpTls")
            .field("ca_file", &self.ca_file)
            .field("client_identity", &self.client_identity)
            .field("external_auth", &self.external_auth)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, contents: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("amqp-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write a temporary file");
        path
    }

    #[test]
    fn unusable_files_are_refused_by_name_without_their_contents() {
        let missing = AmqpTls::default().with_ca_file("/nonexistent/ca.pem");
        let err = missing.load().expect_err("no such file").to_string();
        assert!(
            err.contains("/nonexistent/ca.pem") && err.contains("cannot read"),
            "{err}"
        );

        let not_pem = temp("not-a-ca.pem", b"hello, not a certificate");
        let err = AmqpTls::default()
            .with_ca_file(&not_pem)
            .load()
            .expect_err("no certificate")
            .to_string();
        assert!(err.contains("no PEM certificate"), "{err}");

        let secret_key =
            b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n";
        let key = temp("client.key", secret_key);
        let err = AmqpTls::default()
            .with_client_identity(&not_pem, &key)
            .load()
            .expect_err("no client certificate")
            .to_string();
        assert!(!err.contains("c2VjcmV0"), "{err}");

        let err = AmqpTls::default()
            .with_external_auth(true)
            .load()
            .expect_err("EXTERNAL without a certificate")
            .to_string();
        assert!(err.contains("EXTERNAL"), "{err}");
    }
}
