//! The conformance suite against the in-memory transport of rpc-core.

use std::sync::Arc;

use async_trait::async_trait;
use rpc_core::memory::{self, MemoryServer, MemoryTransport};
use rpc_core::{Registry, Transport};
use rpc_tests::Fixture;

/// Both halves in this process, over a channel.
struct MemoryFixture {
    transport: MemoryTransport,
    server: MemoryServer,
}

#[async_trait]
impl Fixture for MemoryFixture {
    async fn start(registry: Registry) -> Self {
        let (transport, server) = memory::spawn(registry);
        Self { transport, server }
    }

    async fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.transport.clone())
    }

    async fn stop(self) {
        self.server.shutdown().await;
    }
}

rpc_tests::conformance_suite!(MemoryFixture, cancellation);
