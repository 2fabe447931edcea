//! The conformance suite against the TCP transport: a consumer on 127.0.0.1:0 in this
//! process, and a pool over it as the client.

use std::sync::Arc;

use async_trait::async_trait;
use rpc_core::{Registry, Transport};
use rpc_tests::Fixture;
use transport_tcp::{Pool, PoolConfig, Server, ServerConfig};

/// A consumer on a free port of the loopback interface, and a pool over it.
struct TcpFixture {
    server: Server,
    pool: Pool,
}

#[async_trait]
impl Fixture for TcpFixture {
    async fn start(registry: Registry) -> Self {
        let server = Server::bind("127.0.0.1:0", registry, ServerConfig::default())
            .await
            .expect("bind a free port");
        let pool = Pool::new([server.local_addr().to_string()], PoolConfig::default())
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

rpc_tests::conformance_suite!(TcpFixture, cancellation);
