//! AMQP transport for rpc over RabbitMQ (lapin), wire-compatible with aio-pika's JsonRPC. Built in its own issue.
