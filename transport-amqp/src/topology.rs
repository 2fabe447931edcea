//! The queues and exchanges, in the two topologies of [`Topology`]. RabbitMQ refuses (406
//! PRECONDITION_FAILED) to re-declare a queue with other flags or arguments, so every peer of a
//! request queue declares it the same way.
//!
//! | what | name | flags | arguments |
//! |---|---|---|---|
//! | request queue, quorum (default) | the procedure, `handler.method` | durable, not exclusive, not auto-delete | `x-queue-type: quorum`, `x-dead-letter-exchange: rpc.dlx`, `x-delivery-limit: 3` |
//! | request queue, classic (aio-pika's) | the procedure | non-durable, not exclusive, not auto-delete | `x-dead-letter-exchange: rpc.dlx` |
//! | dead-letter exchange | `rpc.dlx` | headers, non-durable, auto-delete | |
//! | reply queue | `rpc.reply.<client id>` | non-durable, exclusive, auto-delete; consumed exclusive, no-ack | |
//! | reply binding | reply queue to `rpc.dlx`, routing key `""` | | `From: <reply queue>`, `x-match: any` |
//!
//! The reply queue is exclusive (aio-pika's is not; nobody else declares or reads it, so peers
//! cannot tell): RabbitMQ 4.3 denies non-durable non-exclusive queues by default (the
//! `transient_nonexcl_queues` deprecation), which is also why the quorum topology is the
//! default. Its name is the client's own and stays the same across reconnections: requests
//! waiting in a queue through a broker restart still name it in `reply_to`, and their replies
//! reach the client once it has declared it again. The Python side of the quorum topology:
//!
//! ```python
//! await rpc.register("calc.add", add, durable=True, arguments={
//!     "x-queue-type": "quorum", "x-delivery-limit": 3})
//! ```
//!
//! (aio-pika adds `x-dead-letter-exchange: rpc.dlx` itself.)

use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Consumer, ExchangeKind};

use crate::{AmqpConfig, Topology};

/// The dead-letter exchange every request queue names, as aio-pika's `RPC.DLX_NAME`.
pub(crate) const DLX_NAME: &str = "rpc.dlx";

/// The header naming the caller's reply queue: the dead-letter exchange routes on it.
pub(crate) const FROM_HEADER: &str = "From";

/// RabbitMQ's pseudo-queue for direct reply-to.
pub(crate) const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Declares the request queue of `procedure` (named by it) in `config`'s topology.
///
/// # Errors
/// The broker's refusal, e.g. 406 when the queue exists with other flags or arguments.
pub(crate) async fn declare_request_queue(
    channel: &Channel,
    procedure: &str,
    config: &AmqpConfig,
) -> lapin::Result<()> {
    let (options, arguments) = request_queue(config);
    channel
        .queue_declare(procedure.into(), options, arguments)
        .await?;
    Ok(())
}

/// The flags and arguments of a request queue in `config`'s topology (the table above).
pub(crate) fn request_queue(config: &AmqpConfig) -> (QueueDeclareOptions, FieldTable) {
    let mut arguments = FieldTable::default();
    arguments.insert("x-dead-letter-exchange".into(), long_string(DLX_NAME));
    let durable = match config.topology {
        Topology::Quorum => {
            arguments.insert("x-queue-type".into(), long_string("quorum"));
            arguments.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(i64::from(config.delivery_limit)),
            );
            true
        }
        Topology::Classic => false,
    };
    let options = QueueDeclareOptions {
        durable,
        ..QueueDeclareOptions::default()
    };
    (options, arguments)
}

/// Declares the reply queue `name`: exclusive, auto-delete, non-durable.
async fn declare_exclusive(channel: &Channel, name: &str) -> lapin::Result<String> {
    let options = QueueDeclareOptions {
        auto_delete: true,
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel
        .queue_declare(name.into(), options, FieldTable::default())
        .await?;
    Ok(queue.name().as_str().to_string())
}

/// Declares the dead-letter exchange `rpc.dlx`: headers, non-durable, auto-delete.
///
/// # Errors
/// The broker's refusal.
pub(crate) async fn declare_dlx(channel: &Channel) -> lapin::Result<()> {
    let options = ExchangeDeclareOptions {
        auto_delete: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            DLX_NAME.into(),
            ExchangeKind::Headers,
            options,
            FieldTable::default(),
        )
        .await
}

/// Declares the exclusive reply queue `name` (`""` for a server-named one), binds it to
/// `rpc.dlx` by its `From` header and consumes it (exclusive, no-ack). Returns its name and the
/// consumer.
///
/// # Errors
/// The broker's refusal, or the connection failing meanwhile.
pub(crate) async fn declare_reply_queue(
    channel: &Channel,
    name: &str,
) -> lapin::Result<(String, Consumer)> {
    declare_dlx(channel).await?;
    let name = declare_exclusive(channel, name).await?;
    let mut arguments = FieldTable::default();
    arguments.insert(FROM_HEADER.into(), long_string(&name));
    arguments.insert("x-match".into(), long_string("any"));
    channel
        .queue_bind(
            name.as_str().into(),
            DLX_NAME.into(),
            "".into(),
            QueueBindOptions::default(),
            arguments,
        )
        .await?;
    let consumer = consume_replies(channel, &name, true).await?;
    Ok((name, consumer))
}

/// Consumes RabbitMQ's direct reply-to pseudo-queue; must happen before the first publish
/// on `channel`.
///
/// # Errors
/// The broker's refusal.
pub(crate) async fn consume_direct_reply_to(channel: &Channel) -> lapin::Result<Consumer> {
    consume_replies(channel, DIRECT_REPLY_TO, false).await
}

async fn consume_replies(
    channel: &Channel,
    queue: &str,
    exclusive: bool,
) -> lapin::Result<Consumer> {
    let options = BasicConsumeOptions {
        no_ack: true,
        exclusive,
        ..BasicConsumeOptions::default()
    };
    channel
        .basic_consume(queue.into(), "".into(), options, FieldTable::default())
        .await
}

/// A header or argument value as a long string, the type aio-pika (pamqp) sends for `str`.
pub(crate) fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// Deletes the request queues of `procedures`, whatever they hold: for tests and tear-down
/// (request queues are not auto-delete, as aio-pika's), never while others still use them.
///
/// # Errors
/// [`rpc_core::RpcError::Io`] when the broker cannot be reached or refuses.
///
/// ```no_run
/// # async fn run() -> Result<(), rpc_core::RpcError> {
/// let config = transport_amqp::AmqpConfig::default();
/// transport_amqp::delete_request_queues(&config, &["calc.add".to_string()]).await?;
/// # Ok(()) }
/// ```
pub async fn delete_request_queues(
    config: &AmqpConfig,
    procedures: &[String],
) -> Result<(), rpc_core::RpcError> {
    let connection = crate::reconnect::connect(config)
        .await
        .map_err(rpc_core::RpcError::from)?;
    let deleted = async {
        let channel = connection.create_channel().await?;
        for procedure in procedures {
            channel
                .queue_delete(procedure.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        Ok::<_, lapin::Error>(())
    }
    .await;
    crate::reconnect::close(&connection, "queues deleted").await;
    Ok(deleted.map_err(crate::error::Error::broker(
        "cannot delete the request queues",
    ))?)
}
