//! The conformance suite against the TCP transport: a consumer on 127.0.0.1:0 in this
//! process, and a pool over it as the client, both with their default configuration.

mod tcp_fixture;

use tcp_fixture::{Security, TcpFixture};
use transport_tcp::{TcpServerConfig, TcpTransportConfig};

/// Plain TCP, the defaults.
struct Plain;

impl Security for Plain {
    fn configs() -> (TcpServerConfig, TcpTransportConfig) {
        (TcpServerConfig::default(), TcpTransportConfig::default())
    }
}

rpc_tests::conformance_suite!(TcpFixture<Plain>, cancellation);
