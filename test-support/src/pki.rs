//! Certificates made at test time with rcgen: a [`Ca`], and certificates it signs for
//! `localhost` and `127.0.0.1` ([`Identity`]), valid now or long expired.
//!
//! ```
//! let ca = test_support::pki::Ca::new("consumers");
//! let consumer = ca.issue("consumer");
//! assert!(ca.pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! assert!(consumer.key.starts_with("-----BEGIN PRIVATE KEY-----"));
//! ```

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// A certificate authority that signs test certificates.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its private key, in PEM.
pub struct Identity {
    /// The certificate.
    pub cert: String,
    /// Its private key (PKCS#8).
    pub key: String,
}

impl Ca {
    /// A new self-signed CA named `name`.
    ///
    /// # Panics
    /// When rcgen cannot make a key or certificate: a test cannot go on without it.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("a CA certificate");
        Self { issuer }
    }

    /// The CA's certificate, in PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate named `name` for `localhost` and `127.0.0.1`, good for a server and a
    /// client.
    pub fn issue(&self, name: &str) -> Identity {
        self.sign(name, false)
    }

    /// The same, valid in 2020 only: expired.
    pub fn issue_expired(&self, name: &str) -> Identity {
        self.sign(name, true)
    }

    fn sign(&self, name: &str, expired: bool) -> Identity {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let mut params = CertificateParams::new(names).expect("certificate parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.issuer).expect("a certificate");
        Identity {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}
