//! The AMQP fixture of the conformance suite, for each broker the suite runs on: a consumer in
//! this process and a client transport, both on the broker a [`Broker`] names.

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use rpc_core::{Registry, Transport};
use rpc_tests::Fixture;
use transport_amqp::{delete_request_queues, AmqpConfig, AmqpServer, AmqpTransport};

/// Which broker, and how to reach it.
pub trait Broker: Send + Sync + 'static {
    /// The configuration of both peers (may start the broker first: it runs on a blocking
    /// thread of the runtime).
    fn config() -> AmqpConfig;

    /// What starts the broker when it does not answer, for the failure message.
    const HOW_TO_START: &'static str;
}

/// A consumer and a client transport on the broker `B`.
pub struct AmqpFixture<B> {
    server: AmqpServer,
    transport: AmqpTransport,
    config: AmqpConfig,
    procedures: Vec<String>,
    _broker: PhantomData<B>,
}

#[async_trait]
impl<B: Broker> Fixture for AmqpFixture<B> {
    async fn start(registry: Registry) -> Self {
        let config = tokio::task::block_in_place(B::config);
        let procedures = registry.procedure_names();
        let server = AmqpServer::start(config.clone(), Arc::new(registry))
            .await
            .unwrap_or_else(|e| panic!("no RabbitMQ at {} ({}): {e}", config.url, B::HOW_TO_START));
        let transport = AmqpTransport::connect(config.clone())
            .await
            .expect("an AMQP client transport");
        Self {
            server,
            transport,
            config,
            procedures,
            _broker: PhantomData,
        }
    }

    async fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.transport.clone())
    }

    async fn stop(self) {
        self.server.shutdown().await;
        // Request queues outlive their consumers, as aio-pika's: leave none behind.
        delete_request_queues(&self.config, &self.procedures)
            .await
            .expect("delete the test's queues");
    }
}
