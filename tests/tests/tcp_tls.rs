//! The conformance suite against the TCP transport with every security feature on: mutual TLS
//! (certificates made at test time, signed by a CA per side) and a shared secret, a consumer
//! on 127.0.0.1:0 in this process and a pool over it as the client.

mod tcp_fixture;

use std::sync::OnceLock;

use tcp_fixture::{Security, TcpFixture};
use test_support::pki::{Ca, Identity};
use transport_tcp::{ClientTls, ServerTls, SharedSecret, TcpServerConfig, TcpTransportConfig};

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

/// Mutual TLS and a shared secret on both sides.
struct MutualTlsAndSecret;

impl Security for MutualTlsAndSecret {
    fn configs() -> (TcpServerConfig, TcpTransportConfig) {
        let pki = pki();
        let tls = ServerTls::from_pem(pki.consumer.cert.as_bytes(), pki.consumer.key.as_bytes())
            .and_then(|tls| {
                tls.require_client_certificates_pem(pki.producers_ca.as_bytes(), "producers' CA")
            })
            .expect("the consumer's TLS");
        let mut server = TcpServerConfig::default();
        server.tls = Some(tls);
        server.secret = Some(secret());
        let tls = ClientTls::from_ca_pem(pki.consumers_ca.as_bytes(), "consumers' CA")
            .and_then(|tls| {
                tls.with_certificate_pem(pki.producer.cert.as_bytes(), pki.producer.key.as_bytes())
            })
            .expect("the producer's TLS");
        let mut pool = TcpTransportConfig::default();
        pool.tls = Some(tls);
        pool.secret = Some(secret());
        (server, pool)
    }
}

rpc_tests::conformance_suite!(TcpFixture<MutualTlsAndSecret>, cancellation);
