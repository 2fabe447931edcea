//! TLS for both halves, through rustls with the ring provider: [`ServerTls`] for a consumer
//! (its certificate chain and key, and optionally the CA its clients' certificates must be
//! signed by), [`ClientTls`] for a producer (the CA that signed the consumers' certificates,
//! and optionally its own certificate), and the plain words for what a failed handshake means.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{
    self, crypto::CryptoProvider, server::WebPkiClientVerifier, AlertDescription, CertificateError,
    ClientConfig, RootCertStore, ServerConfig,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::SecurityError;

/// The first byte of every TLS connection (a handshake record).
pub(crate) const HANDSHAKE_RECORD: u8 = 0x16;

/// A consumer's TLS: its certificate chain and private key, and, for mutual TLS, the CA that
/// must have signed every client's certificate. `Debug` shows whether clients must present
/// a certificate, never the key.
///
/// ```no_run
/// # fn main() -> Result<(), transport_tcp::SecurityError> {
/// use transport_tcp::{ServerTls, TcpServerConfig};
///
/// let mut config = TcpServerConfig::default();
/// config.tls = Some(
///     ServerTls::from_pem_files("consumer.crt", "consumer.key")?
///         .require_client_certificates("clients-ca.crt")?,
/// );
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServerTls {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    client_ca: Option<Arc<RootCertStore>>,
    config: Arc<ServerConfig>,
}

impl ServerTls {
    /// TLS with the certificate chain (the consumer's certificate first, then any
    /// intermediates) and private key in PEM files; clients need no certificate.
    ///
    /// # Errors
    /// A file cannot be read, holds no certificate or key, or rustls refuses them (a key that
    /// does not match the certificate, say).
    pub fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, SecurityError> {
        let (chain, key) = identity_files(chain.as_ref(), key.as_ref())?;
        Self::build(chain, key, None)
    }

    /// TLS with the certificate chain and private key given as PEM text.
    ///
    /// # Errors
    /// As [`ServerTls::from_pem_files`].
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self, SecurityError> {
        let chain = certificates(chain, "the certificate chain")?;
        let key = private_key(key, "the private key")?;
        Self::build(chain, key, None)
    }

    /// Mutual TLS: only clients whose certificate the CA in this PEM file signed are served;
    /// others are refused in the TLS handshake, before any of their bytes is read.
    ///
    /// # Errors
    /// The file cannot be read or holds no usable CA certificate.
    pub fn require_client_certificates(self, ca: impl AsRef<Path>) -> Result<Self, SecurityError> {
        let ca = ca.as_ref();
        self.require_client_certificates_pem(&read(ca)?, &ca.display().to_string())
    }

    /// Mutual TLS with the clients' CA given as PEM text (`what` names it in errors).
    ///
    /// # Errors
    /// As [`ServerTls::require_client_certificates`].
    pub fn require_client_certificates_pem(
        self,
        ca: &[u8],
        what: &str,
    ) -> Result<Self, SecurityError> {
        let roots = root_store(ca, what)?;
        Self::build(self.chain, self.key, Some(roots))
    }

    /// Whether clients must present a certificate.
    pub fn is_mutual(&self) -> bool {
        self.client_ca.is_some()
    }

    fn build(
        chain: Vec<CertificateDer<'static>>,
        key: impl Into<Arc<PrivateKeyDer<'static>>>,
        client_ca: Option<Arc<RootCertStore>>,
    ) -> Result<Self, SecurityError> {
        let key = key.into();
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?;
        let builder = match &client_ca {
            Some(roots) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                        .build()
                        .map_err(|e| SecurityError::Tls(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(tls_error)?;
        Ok(Self {
            chain,
            key,
            client_ca,
            config: Arc::new(config),
        })
    }

    /// The acceptor that runs the consumer's side of the handshake.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("certificates", &self.chain.len())
            .field("key", &"<redacted>")
            .field("client_certificates_required", &self.is_mutual())
            .finish()
    }
}

/// A producer's TLS: the CA that must have signed every consumer's certificate, and, for a
/// consumer that requires one, the producer's own certificate and key. The name checked in a
/// consumer's certificate is the host of its address (`consumer1.example:9000` checks
/// `consumer1.example`, `10.0.0.5:9000` the IP address), unless
/// [`ClientTls::with_server_name`] sets one for every consumer.
///
/// ```no_run
/// # fn main() -> Result<(), transport_tcp::SecurityError> {
/// use transport_tcp::{ClientTls, TcpTransportConfig};
///
/// let mut config = TcpTransportConfig::default();
/// config.tls = Some(
///     ClientTls::from_ca_file("consumers-ca.crt")?
///         .with_certificate_files("producer.crt", "producer.key")?,
/// );
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientTls {
    roots: Arc<RootCertStore>,
    identity: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    server_name: Option<ServerName<'static>>,
    config: Arc<ClientConfig>,
}

impl ClientTls {
    /// Trusts the consumers whose certificates the CA in this PEM file signed.
    ///
    /// # Errors
    /// The file cannot be read or holds no usable CA certificate.
    pub fn from_ca_file(ca: impl AsRef<Path>) -> Result<Self, SecurityError> {
        let ca = ca.as_ref();
        Self::from_ca_pem(&read(ca)?, &ca.display().to_string())
    }

    /// Trusts the consumers whose certificates the CA given as PEM text signed (`what` names
    /// it in errors).
    ///
    /// # Errors
    /// As [`ClientTls::from_ca_file`].
    pub fn from_ca_pem(ca: &[u8], what: &str) -> Result<Self, SecurityError> {
        Self::build(root_store(ca, what)?, None, None)
    }

    /// Presents this certificate chain and key to consumers that require a client
    /// certificate (mutual TLS).
    ///
    /// # Errors
    /// A file cannot be read, holds no certificate or key, or rustls refuses them.
    pub fn with_certificate_files(
        self,
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, SecurityError> {
        let (chain, key) = identity_files(chain.as_ref(), key.as_ref())?;
        Self::build(self.roots, Some((chain, Arc::new(key))), self.server_name)
    }

    /// Presents this certificate chain and key, given as PEM text.
    ///
    /// # Errors
    /// As [`ClientTls::with_certificate_files`].
    pub fn with_certificate_pem(self, chain: &[u8], key: &[u8]) -> Result<Self, SecurityError> {
        let chain = certificates(chain, "the certificate chain")?;
        let key = private_key(key, "the private key")?;
        Self::build(self.roots, Some((chain, Arc::new(key))), self.server_name)
    }

    /// Checks this name (a DNS name or an IP address) in every consumer's certificate
    /// instead of the host of its address.
    ///
    /// # Errors
    /// [`SecurityError::ServerName`] when `name` is neither.
    pub fn with_server_name(mut self, name: &str) -> Result<Self, SecurityError> {
        let name = ServerName::try_from(name.to_string())
            .map_err(|_| SecurityError::ServerName(name.to_string()))?;
        self.server_name = Some(name);
        Ok(self)
    }

    fn build(
        roots: Arc<RootCertStore>,
        identity: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
        server_name: Option<ServerName<'static>>,
    ) -> Result<Self, SecurityError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_root_certificates(roots.clone());
        let config = match &identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(tls_error)?,
            None => builder.with_no_client_auth(),
        };
        Ok(Self {
            roots,
            identity,
            server_name,
            config: Arc::new(config),
        })
    }

    /// Runs the producer's side of the handshake with the consumer at `addr` on `stream`.
    ///
    /// # Errors
    /// An invalid server name, or the handshake failed ([`describe`] says why in plain words).
    pub(crate) async fn connect(
        &self,
        addr: &str,
        stream: TcpStream,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => server_name(addr)?,
        };
        TlsConnector::from(self.config.clone())
            .connect(name, stream)
            .await
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("trusted_cas", &self.roots.len())
            .field("client_certificate", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// The name to check in the certificate of the consumer at `addr` (`host:port`).
fn server_name(addr: &str) -> io::Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is not a name a TLS certificate can be checked against"),
        )
    })
}

/// What a failed TLS handshake (or a TLS stream's later failure) means, in plain words, when
/// rustls is behind it.
pub(crate) fn describe(err: &io::Error) -> Option<String> {
    let tls = err.get_ref()?.downcast_ref::<rustls::Error>()?;
    let text = match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => {
                "the consumer's certificate is not signed by the CA this producer trusts".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the consumer's certificate has expired".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the consumer's certificate is not valid for its address (ClientTls::with_server_name)".into()
            }
            other => format!("the consumer's certificate is not valid: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired => {
                "the consumer requires a client certificate and this producer presented none".into()
            }
            AlertDescription::UnknownCA | AlertDescription::BadCertificate => format!(
                "the consumer refused this producer's certificate ({alert:?}): not signed by a CA it trusts"
            ),
            AlertDescription::CertificateExpired => {
                "the consumer refused this producer's certificate: it has expired".into()
            }
            other => format!("the consumer ended the TLS handshake: {other:?}"),
        },
        rustls::Error::InvalidMessage(_) => {
            "the consumer did not answer in TLS: is it a plain TCP consumer?".into()
        }
        other => other.to_string(),
    };
    Some(format!("TLS: {text}"))
}

/// The one crypto provider: ring, whatever else the build enables.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(err: rustls::Error) -> SecurityError {
    SecurityError::Tls(err.to_string())
}

fn read(path: &Path) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|source| SecurityError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(what: &str, err: rustls_pki_types::pem::Error) -> SecurityError {
    SecurityError::Pem {
        what: what.to_string(),
        message: err.to_string(),
    }
}

/// A certificate chain and its private key from PEM files.
fn identity_files(
    chain: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), SecurityError> {
    let chain = certificates(&read(chain)?, &chain.display().to_string())?;
    let key = private_key(&read(key)?, &key.display().to_string())?;
    Ok((chain, key))
}

/// Every certificate in a PEM buffer, at least one.
fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, SecurityError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, e))?;
    match chain.is_empty() {
        true => Err(SecurityError::NoCertificate(what.to_string())),
        false => Ok(chain),
    }
}

/// The first private key in a PEM buffer.
fn private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, SecurityError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => SecurityError::NoKey(what.to_string()),
        other => pem_error(what, other),
    })
}

/// The CA certificates in a PEM buffer, as a trust store.
fn root_store(pem: &[u8], what: &str) -> Result<Arc<RootCertStore>, SecurityError> {
    let mut roots = RootCertStore::empty();
    for ca in certificates(pem, what)? {
        roots
            .add(ca)
            .map_err(|e| SecurityError::Tls(format!("{what}: {e}")))?;
    }
    Ok(Arc::new(roots))
}
