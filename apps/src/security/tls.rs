//! The TCP transport's security options, as each binary takes them: TLS files by flag (paths
//! are not secret), the shared secret from the environment only ([`Secret`]). Resolved into a
//! [`TransportSecurity`], from which the transport's configurations are built
//! ([`TransportSecurity::server_config`], [`TransportSecurity::client_config`]).

use std::path::{Path, PathBuf};

use transport_tcp::{ClientTls, ServerTls, SharedSecret, TcpServerConfig, TcpTransportConfig};

use super::Secret;

/// The consumer's TLS flags (TCP).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConsumerTls {
    /// TLS on the TCP port: the consumer's certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Mutual TLS: accept only producers whose certificate this CA (PEM) signed; needs
    /// --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

/// The producer's (and `call`'s) TLS flags (TCP).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProducerTls {
    /// TLS to the consumers: verify their certificates against this CA (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// Mutual TLS: the certificate chain (PEM) presented to consumers that require one
    /// (their --tls-client-ca); needs --tls-ca and --tls-key.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Everything that secures the TCP transport, resolved and checked: the TLS files exist and
/// can be read, the secret came from the environment. `Debug` shows paths, never the secret.
#[derive(Debug, Clone, Default)]
pub struct TransportSecurity {
    /// The consumer's certificate chain and key, or the producer's for mutual TLS (PEM files).
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    /// The CA a consumer checks producers' certificates against (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// The CA a producer checks consumers' certificates against.
    pub ca: Option<PathBuf>,
    /// The shared secret (challenge and response in the handshake).
    pub secret: Option<Secret>,
}

impl TransportSecurity {
    /// A consumer's: its TLS flags and the secret from `RPC_SECRET_FILE` / `RPC_SECRET`.
    ///
    /// # Errors
    /// A message naming the file or variable that cannot be used.
    pub fn consumer(tls: &ConsumerTls) -> Result<Self, String> {
        let cert_and_key = cert_and_key(&tls.tls_cert, &tls.tls_key)?;
        if let Some(ca) = &tls.tls_client_ca {
            readable("--tls-client-ca", ca)?;
        }
        Ok(Self {
            cert_and_key,
            client_ca: tls.tls_client_ca.clone(),
            ca: None,
            secret: Secret::from_env()?,
        })
    }

    /// A producer's: its CA flag and the secret from `RPC_SECRET_FILE` / `RPC_SECRET`.
    ///
    /// # Errors
    /// A message naming the file or variable that cannot be used.
    pub fn producer(tls: &ProducerTls) -> Result<Self, String> {
        if let Some(ca) = &tls.tls_ca {
            readable("--tls-ca", ca)?;
        }
        let cert_and_key = cert_and_key(&tls.tls_cert, &tls.tls_key)?;
        Ok(Self {
            cert_and_key,
            ca: tls.tls_ca.clone(),
            secret: Secret::from_env()?,
            ..Self::default()
        })
    }

    /// What secures a consumer's port (`TLS`, `mutual TLS`, the secret's source, or both);
    /// `None` when nothing does.
    pub fn secured_by(&self) -> Option<String> {
        let tls = match (&self.cert_and_key, &self.client_ca) {
            (Some(_), Some(_)) => Some("mutual TLS".to_string()),
            (Some(_), None) => Some("TLS".to_string()),
            _ => None,
        };
        let secret = self
            .secret
            .as_ref()
            .map(|s| format!("a shared secret ({})", s.source()));
        match (tls, secret) {
            (Some(tls), Some(secret)) => Some(format!("{tls} and {secret}")),
            (one, other) => one.or(other),
        }
    }

    /// Whether anything is set.
    pub fn is_set(&self) -> bool {
        self.cert_and_key.is_some()
            || self.client_ca.is_some()
            || self.ca.is_some()
            || self.secret.is_some()
    }

    /// The consumer's TCP configuration: TLS with its certificate (and the producers' CA for
    /// mutual TLS), the shared secret; the rest default.
    ///
    /// # Errors
    /// A message naming the file that cannot be used (never a secret).
    pub fn server_config(&self) -> Result<TcpServerConfig, String> {
        let mut config = TcpServerConfig::default();
        if let Some((cert, key)) = &self.cert_and_key {
            let tls = ServerTls::from_pem_files(cert, key).map_err(|e| format!("TLS: {e}"))?;
            config.tls = Some(match &self.client_ca {
                Some(ca) => tls
                    .require_client_certificates(ca)
                    .map_err(|e| format!("--tls-client-ca: {e}"))?,
                None => tls,
            });
        }
        config.secret = self.shared_secret()?;
        Ok(config)
    }

    /// The producer's TCP configuration: TLS verified against the consumers' CA (with its own
    /// certificate for mutual TLS), the shared secret; the rest default.
    ///
    /// # Errors
    /// A message naming the file that cannot be used (never a secret).
    pub fn client_config(&self) -> Result<TcpTransportConfig, String> {
        let mut config = TcpTransportConfig::default();
        if let Some(ca) = &self.ca {
            let tls = ClientTls::from_ca_file(ca).map_err(|e| format!("--tls-ca: {e}"))?;
            config.tls = Some(match &self.cert_and_key {
                Some((cert, key)) => tls
                    .with_certificate_files(cert, key)
                    .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?,
                None => tls,
            });
        }
        config.secret = self.shared_secret()?;
        Ok(config)
    }

    fn shared_secret(&self) -> Result<Option<SharedSecret>, String> {
        self.secret
            .as_ref()
            .map(|secret| {
                SharedSecret::new(secret.expose())
                    .map_err(|e| format!("the secret from {}: {e}", secret.source()))
            })
            .transpose()
    }
}

/// `--tls-cert` and `--tls-key`, both readable, or neither.
fn cert_and_key(
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
) -> Result<Option<(PathBuf, PathBuf)>, String> {
    match (cert, key) {
        (Some(cert), Some(key)) => {
            readable("--tls-cert", cert)?;
            readable("--tls-key", key)?;
            Ok(Some((cert.clone(), key.clone())))
        }
        (None, None) => Ok(None),
        _ => Err("--tls-cert and --tls-key go together".into()),
    }
}

fn readable(flag: &str, path: &Path) -> Result<(), String> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|err| format!("{flag}: cannot read {}: {err}", path.display()))
}
