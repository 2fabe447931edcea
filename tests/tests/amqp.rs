//! The conformance suite against the AMQP transport, on a real RabbitMQ broker.
//!
//! The broker is `AMQP_URL`, `RABBITMQ_URL` or the local default; `scripts/start_rabbitmq.sh`
//! starts one. Without a broker every case fails loudly: nothing is skipped. Cases share the
//! broker in parallel: each registers its procedures under a handler name of its own.

use std::sync::Arc;

use async_trait::async_trait;
use rpc_core::{Registry, Transport};
use rpc_tests::Fixture;
use transport_amqp::delete_request_queues;
use transport_amqp::{AmqpConfig, AmqpServer, AmqpTransport};

/// A consumer in this process and a client transport, both on the broker.
struct AmqpFixture {
    server: AmqpServer,
    transport: AmqpTransport,
    config: AmqpConfig,
    procedures: Vec<String>,
}

#[async_trait]
impl Fixture for AmqpFixture {
    async fn start(registry: Registry) -> Self {
        let config = AmqpConfig::default();
        let procedures = registry.procedure_names();
        let server = AmqpServer::start(config.clone(), Arc::new(registry))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no RabbitMQ at {} (scripts/start_rabbitmq.sh): {e}",
                    config.url
                )
            });
        let transport = AmqpTransport::connect(config.clone())
            .await
            .expect("an AMQP client transport");
        Self {
            server,
            transport,
            config,
            procedures,
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

rpc_tests::conformance_suite!(AmqpFixture);
