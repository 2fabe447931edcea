//! The TCP fixture of the conformance suite, for each way a consumer can be secured: a
//! consumer on a free port of the loopback interface, and a pool over it as the client, with
//! the configurations a [`Security`] gives.

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use rpc_core::{Registry, Transport};
use rpc_tests::Fixture;
use transport_tcp::{TcpServer, TcpServerConfig, TcpTransport, TcpTransportConfig};

/// How the consumer and the pool are configured.
pub trait Security: Send + Sync + 'static {
    /// The consumer's configuration and the pool's.
    fn configs() -> (TcpServerConfig, TcpTransportConfig);
}

/// A consumer and a pool over it, configured by `S`.
pub struct TcpFixture<S> {
    server: TcpServer,
    pool: TcpTransport,
    _security: PhantomData<S>,
}

#[async_trait]
impl<S: Security> Fixture for TcpFixture<S> {
    async fn start(registry: Registry) -> Self {
        let (server_config, pool_config) = S::configs();
        let server = TcpServer::bind("127.0.0.1:0", registry, server_config)
            .await
            .expect("bind a free port");
        let pool = TcpTransport::new([server.local_addr().to_string()], pool_config)
            .expect("a pool over one address");
        Self {
            server,
            pool,
            _security: PhantomData,
        }
    }

    async fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.pool.clone())
    }

    async fn stop(self) {
        drop(self.pool);
        self.server.shutdown().await;
    }
}
