//! The conformance suite against the AMQP transport, on a real RabbitMQ broker.
//!
//! The broker is `AMQP_URL`, `RABBITMQ_URL` or the local default; `scripts/start_rabbitmq.sh`
//! starts one. Without a broker every case fails loudly: nothing is skipped. Cases share the
//! broker in parallel: each registers its procedures under a handler name of its own.

mod amqp_fixture;

use amqp_fixture::{AmqpFixture, Broker};
use transport_amqp::AmqpConfig;

/// The usual broker, with the default configuration.
struct LocalBroker;

impl Broker for LocalBroker {
    fn config() -> AmqpConfig {
        AmqpConfig::default()
    }

    const HOW_TO_START: &'static str = "scripts/start_rabbitmq.sh";
}

rpc_tests::conformance_suite!(AmqpFixture<LocalBroker>);
