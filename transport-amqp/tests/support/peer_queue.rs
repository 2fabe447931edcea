//! A request queue declared as a foreign peer (aio-pika) declares it in each topology, with the
//! flags and arguments the README documents: shared by the tests' support and the bench (whose
//! raw floor runs on the same queue type).

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::Channel;
use transport_amqp::{Topology, DEFAULT_DELIVERY_LIMIT};

/// The dead-letter exchange every request queue names.
pub const DLX: &str = "rpc.dlx";

/// An AMQP long string.
pub fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// Declares the request queue `name` in `topology`: the broker refuses (406) the declaration
/// if ours differ.
pub async fn declare_request_queue(channel: &Channel, name: &str, topology: Topology) {
    let mut arguments = FieldTable::default();
    arguments.insert("x-dead-letter-exchange".into(), long_string(DLX));
    let durable = topology == Topology::Quorum;
    if durable {
        arguments.insert("x-queue-type".into(), long_string("quorum"));
        arguments.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(DEFAULT_DELIVERY_LIMIT)),
        );
    }
    let options = QueueDeclareOptions {
        durable,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.into(), options, arguments)
        .await
        .unwrap_or_else(|e| panic!("declare the request queue {name} ({topology}): {e}"));
}
