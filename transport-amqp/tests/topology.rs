//! What the broker itself says a consumer and a client declared (`rabbitmqctl list_queues`,
//! `list_consumers`, `list_channels`), in each topology.
//!
//! The default (quorum) topology must declare nothing RabbitMQ 4.3 denies by default: no queue
//! both non-durable and non-exclusive (`transient_nonexcl_queues`) and no channel-wide QoS
//! (`global_qos`). The classic one must declare exactly aio-pika's flags.

mod support;

use std::time::Duration;

use rpc_core::{Client, Registry};
use serde_json::Value;
use test_support::rabbitmq::rabbitmqctl_json;
use transport_amqp::{AmqpConfig, AmqpServer, AmqpTransport, Topology, DEFAULT_DELIVERY_LIMIT};

use support::{config, delete_queues, runtime, unique, First};

/// What the broker says of the queues, consumers and channels of one consumer and one client.
struct BrokerView {
    /// The request queues and the reply queue, as `list_queues` rows.
    queues: Vec<Value>,
    /// The request queues' consumers, as `list_consumers` rows.
    consumers: Vec<Value>,
    /// The consumers' channels, as `list_channels` rows.
    channels: Vec<Value>,
}

/// Serves two procedures with `config` (3 workers), makes one call, and reads the broker's
/// view of what was declared.
fn broker_view(config: AmqpConfig) -> BrokerView {
    runtime().block_on(async {
        let name = unique("view");
        let mut registry = Registry::new().with_workers(3);
        registry.register_as(name.clone(), First);
        let server = AmqpServer::start(config.clone(), std::sync::Arc::new(registry))
            .await
            .expect("a consumer on the broker (scripts/start_rabbitmq.sh)");
        let transport = AmqpTransport::connect(config).await.expect("a client");
        let reply_queue = transport.reply_queue().expect("a reply queue");
        let client = Client::new(transport).with_timeout(Duration::from_secs(10));
        let work = format!("{name}.work");
        assert_eq!(
            client.call::<_, String>(&work, &(1u64,)).await.as_deref(),
            Ok("first")
        );

        let queues: Vec<Value> = rabbitmqctl_json(&[
            "list_queues",
            "name",
            "durable",
            "exclusive",
            "auto_delete",
            "type",
            "arguments",
        ])
        .into_iter()
        .filter(|q| q["name"] == work.as_str() || q["name"] == reply_queue.as_str())
        .collect();
        let consumers: Vec<Value> = rabbitmqctl_json(&[
            "list_consumers",
            "queue_name",
            "channel_pid",
            "prefetch_count",
        ])
        .into_iter()
        .filter(|c| c["queue_name"] == work.as_str())
        .collect();
        let channels: Vec<Value> = rabbitmqctl_json(&[
            "list_channels",
            "pid",
            "global_prefetch_count",
            "prefetch_count",
        ])
        .into_iter()
        .filter(|ch| consumers.iter().any(|c| c["channel_pid"] == ch["pid"]))
        .collect();
        server.shutdown().await;
        delete_queues(&name, &["work"]).await;
        println!("queues: {queues:#?}\nconsumers: {consumers:#?}\nchannels: {channels:#?}");
        assert_eq!(queues.len(), 2, "the request queue and the reply queue");
        assert_eq!(consumers.len(), 1, "one consumer of the request queue");
        assert_eq!(channels.len(), 1, "its channel");
        BrokerView {
            queues,
            consumers,
            channels,
        }
    })
}

/// The value of `argument` in a `list_queues` row's `arguments` (a list of [name, type, value]).
fn argument(queue: &Value, argument: &str) -> Option<Value> {
    queue["arguments"]
        .as_array()?
        .iter()
        .find(|entry| entry[0] == argument)
        .map(|entry| entry[2].clone())
}

/// `list_queues`'s `exclusive` column: `true`, or `""` for a queue that is not.
fn is_exclusive(queue: &Value) -> bool {
    queue["exclusive"] == true
}

fn is_request_queue(queue: &Value) -> bool {
    !is_exclusive(queue)
}

#[test]
fn the_default_topology_declares_nothing_rabbitmq_4_3_denies() {
    let view = broker_view(config().with_topology(Topology::default()));
    for queue in &view.queues {
        let durable = queue["durable"].as_bool().expect("durable column");
        let exclusive = is_exclusive(queue);
        assert!(
            durable || exclusive,
            "a transient non-exclusive queue: {queue}"
        );
    }
    let request = view
        .queues
        .iter()
        .find(|q| is_request_queue(q))
        .expect("the request queue");
    assert_eq!(request["type"], "quorum", "{request}");
    assert_eq!(request["durable"], true, "{request}");
    assert_eq!(argument(request, "x-queue-type"), Some("quorum".into()));
    assert_eq!(
        argument(request, "x-dead-letter-exchange"),
        Some("rpc.dlx".into())
    );
    assert_eq!(
        argument(request, "x-delivery-limit"),
        Some(DEFAULT_DELIVERY_LIMIT.into())
    );
    let reply = view
        .queues
        .iter()
        .find(|q| !is_request_queue(q))
        .expect("the reply queue");
    assert_eq!(reply["exclusive"], true, "{reply}");
    // Per-consumer prefetch = the workers, never channel-wide.
    assert_eq!(
        view.consumers[0]["prefetch_count"], 3,
        "{:?}",
        view.consumers
    );
    assert_eq!(
        view.channels[0]["global_prefetch_count"], 0,
        "{:?}",
        view.channels
    );
}

#[test]
fn the_classic_topology_declares_aio_pikas_flags() {
    let view = broker_view(config().with_topology(Topology::Classic));
    let request = view
        .queues
        .iter()
        .find(|q| is_request_queue(q))
        .expect("the request queue");
    assert_eq!(request["type"], "classic", "{request}");
    assert_eq!(request["durable"], false, "{request}");
    assert_eq!(request["auto_delete"], false, "{request}");
    assert_eq!(argument(request, "x-queue-type"), None, "{request}");
    assert_eq!(
        argument(request, "x-dead-letter-exchange"),
        Some("rpc.dlx".into())
    );
    assert_eq!(argument(request, "x-delivery-limit"), None, "{request}");
    assert_eq!(
        view.channels[0]["global_prefetch_count"], 0,
        "{:?}",
        view.channels
    );
}
