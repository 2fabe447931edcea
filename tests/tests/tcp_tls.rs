//! The conformance suite against the TCP transport with every security feature on: mutual TLS
//! (certificates made at test time, signed by a CA per side) and a shared secret, a consumer
//! on 127.0.0.1:0 in this process and a pool over it as the client.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rpc_core::{Registry, Transport};
use rpc_tests::Fixture;
use transport_tcp::{
    ClientTls, ServerTls, SharedSecret, TcpServer, TcpServerConfig, TcpTransport,
    TcpTransportConfig,
};

/// A certificate and its key, in PEM.
struct Identity {
    cert: String,
    key: String,
}

/// The CAs and certificates every case shares (made once: key generation is not free).
struct Pki {
    consumers_ca: String,
    producers_ca: String,
    consumer: Identity,
    producer: Identity,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let consumers = ca("consumers' CA");
        let producers = ca("producers' CA");
        Pki {
            consumers_ca: consumers.pem(),
            producers_ca: producers.pem(),
            consumer: issue(&consumers, "consumer"),
            producer: issue(&producers, "producer"),
        }
    })
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a key")).expect("a CA")
}

fn issue(ca: &CertifiedIssuer<'static, KeyPair>, name: &str) -> Identity {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let mut params = CertificateParams::new(names).expect("certificate parameters");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().expect("a key");
    let cert = params.signed_by(&key, ca).expect("a certificate");
    Identity {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn secret() -> SharedSecret {
    SharedSecret::new("the conformance suite's shared secret").expect("a secret")
}

/// A consumer with mutual TLS and a shared secret, and a pool with the matching settings.
struct TcpTlsFixture {
    server: TcpServer,
    pool: TcpTransport,
}

#[async_trait]
impl Fixture for TcpTlsFixture {
    async fn start(registry: Registry) -> Self {
        let pki = pki();
        let tls = ServerTls::from_pem(pki.consumer.cert.as_bytes(), pki.consumer.key.as_bytes())
            .and_then(|tls| {
                tls.require_client_certificates_pem(pki.producers_ca.as_bytes(), "producers' CA")
            })
            .expect("the consumer's TLS");
        let mut config = TcpServerConfig::default();
        config.tls = Some(tls);
        config.secret = Some(secret());
        let server = TcpServer::bind("127.0.0.1:0", registry, config)
            .await
            .expect("bind a free port");
        let tls = ClientTls::from_ca_pem(pki.consumers_ca.as_bytes(), "consumers' CA")
            .and_then(|tls| {
                tls.with_certificate_pem(pki.producer.cert.as_bytes(), pki.producer.key.as_bytes())
            })
            .expect("the producer's TLS");
        let mut config = TcpTransportConfig::default();
        config.tls = Some(tls);
        config.secret = Some(secret());
        let pool = TcpTransport::new([server.local_addr().to_string()], config)
            .expect("a pool over one address");
        Self { server, pool }
    }

    async fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.pool.clone())
    }

    async fn stop(self) {
        drop(self.pool);
        self.server.shutdown().await;
    }
}

rpc_tests::conformance_suite!(TcpTlsFixture, cancellation);
