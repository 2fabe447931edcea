//! The conformance suite against the TCP transport with every security feature on: mutual TLS
//! (certificates made at test time, signed by a CA per side) and a shared secret, a consumer
//! on 127.0.0.1:0 in this process and a pool over it as the client.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use rpc_core::{Registry, Transport};
use rpc_tests::Fixture;
use test_support::pki::{Ca, Identity};
use transport_tcp::{
    ClientTls, ServerTls, SharedSecret, TcpServer, TcpServerConfig, TcpTransport,
    TcpTransportConfig,
};

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
        let consumers = Ca::new("consumers' CA");
        let producers = Ca::new("producers' CA");
        Pki {
            consumers_ca: consumers.pem(),
            producers_ca: producers.pem(),
            consumer: consumers.issue("consumer"),
            producer: producers.issue("producer"),
        }
    })
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
