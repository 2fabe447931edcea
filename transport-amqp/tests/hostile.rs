//! Hostile messages on a real broker (DESIGN.md section 8): request bodies over the consumer's
//! limit, requests that arrive past their deadline, and junk published to a client's reply
//! queue. Each is answered or dropped as the design says, and the consumer and the client keep
//! serving. (No `reply_to`, garbage bodies and wrong content types are in `transport.rs`.)

mod support;

use std::time::{Duration, Instant};

use lapin::{BasicProperties, Channel};
use rpc_core::{Client, Encoding, ErrorKind, Registry, RpcError};
use transport_amqp::{AmqpServer, AmqpTransport, DEFAULT_MAX_BODY};

use support::{
    bind_to_dlx, call_properties, client, config, delete_queues, emptied, message_type, next_reply,
    publish, raw_channel, raw_reply_queue, reply_of, runtime, serve, serve_counter, unique,
    Counter, First,
};

/// A JSON request `{"tag": "<tag>xxx..."}` of exactly `len` bytes.
fn json_body_of_len(tag: &str, len: usize) -> Vec<u8> {
    let frame = format!(r#"{{"tag": "{tag}"}}"#).len();
    let pad = "x".repeat(len.checked_sub(frame).expect("len fits the frame"));
    let body = format!(r#"{{"tag": "{tag}{pad}"}}"#).into_bytes();
    assert_eq!(body.len(), len);
    body
}

/// After a hostile request for `tag` to `<name>.count` (a [`Counter`]): the consumer still
/// serves, the request never ran (the count for `tag` is 1 with this call), and it was acked,
/// not requeued (once the consumer is gone nothing is left in its queue; an unacked request
/// would be back in it). Stops the consumer and deletes the queue.
async fn never_ran_and_acked(server: AmqpServer, channel: &Channel, name: &str, tag: &str) {
    let queue = format!("{name}.count");
    let client = client().await.with_timeout(Duration::from_secs(10));
    assert_eq!(
        client.call::<_, u64>(&queue, &(tag,)).await,
        Ok(1),
        "the consumer serves, and the hostile request did not run"
    );
    server.shutdown().await;
    assert!(emptied(channel, &queue).await, "the queue emptied");
    delete_queues(name, &["count"]).await;
}

#[test]
fn a_body_over_the_limit_gets_a_protocol_error_undecoded_and_is_acked() {
    const LIMIT: usize = 1 << 20;
    runtime().block_on(async {
        let (name, queue, server) = serve_counter("oversized", config().with_max_body(LIMIT)).await;
        let (_connection, channel) = raw_channel().await;
        let (reply_queue, mut replies) = raw_reply_queue(&channel).await;
        let properties = |id: &str| call_properties(id, &reply_queue);

        // At the limit: decoded and run.
        let tag = unique("at-limit");
        publish(
            &channel,
            &queue,
            properties("at-limit"),
            &json_body_of_len(&tag, LIMIT),
        )
        .await;
        let reply = next_reply(&mut replies).await;
        assert_eq!(
            reply
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str()),
            Some("at-limit")
        );
        assert_eq!(reply_of(&reply), Ok(b"1".to_vec()));

        // One byte over, a valid request otherwise: a protocol error, not run.
        let tag = unique("over-limit");
        publish(
            &channel,
            &queue,
            properties("over-limit"),
            &json_body_of_len(&tag, LIMIT + 1),
        )
        .await;
        let reply = next_reply(&mut replies).await;
        assert_eq!(
            reply
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str()),
            Some("over-limit")
        );
        assert_eq!(message_type(&reply), Some("error"));
        assert_eq!(reply_of(&reply), Err(ErrorKind::Protocol));

        never_ran_and_acked(server, &channel, &name, &tag).await;
    });
}

#[test]
fn a_20_mib_call_against_the_default_limit_fails_fast_and_the_consumer_keeps_serving() {
    const HUGE: usize = 20 << 20;
    const _: () = assert!(HUGE > DEFAULT_MAX_BODY);
    runtime().block_on(async {
        let (name, queue, server) = serve_counter("huge", config()).await;
        let client = client().await.with_timeout(Duration::from_secs(60));

        // Through the ordinary client: the caller gets the consumer's protocol error.
        let tag = unique("huge");
        let body = json_body_of_len(&tag, HUGE);
        let started = Instant::now();
        let result = client.call_raw(&queue, Encoding::Json, body).await;
        let elapsed = started.elapsed();
        println!("a {HUGE}-byte request was refused in {elapsed:?}");
        match result {
            Err(RpcError::Protocol(_)) => {}
            other => panic!("expected a protocol error, got {other:?}"),
        }

        let (_connection, channel) = raw_channel().await;
        never_ran_and_acked(server, &channel, &name, &tag).await;
    });
}

#[test]
fn a_request_arriving_past_its_deadline_is_answered_deadline_exceeded_and_not_run() {
    runtime().block_on(async {
        let (name, queue, server) = serve_counter("expired", config()).await;
        let (_connection, channel) = raw_channel().await;
        let (reply_queue, mut replies) = raw_reply_queue(&channel).await;
        bind_to_dlx(&channel, &reply_queue).await;

        // A well-formed request, as our client sends it, but with no time left: `expiration`
        // "0". An idle consumer is there, so the broker delivers it rather than dropping it.
        let tag = unique("tag");
        let body = serde_json::to_vec(&serde_json::json!({ "tag": tag })).expect("json");
        let properties = call_properties("no-time-left", &reply_queue).with_expiration("0".into());
        publish(&channel, &queue, properties, &body).await;
        let reply = next_reply(&mut replies).await;
        assert_eq!(
            reply
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str()),
            Some("no-time-left")
        );
        // `error`: the consumer took it and refused to run it (a dead-lettered request would
        // come back as `call`; that would be right too, but would not test the consumer).
        assert_eq!(message_type(&reply), Some("error"));
        assert_eq!(reply_of(&reply), Err(ErrorKind::DeadlineExceeded));

        never_ran_and_acked(server, &channel, &name, &tag).await;
    });
}

#[test]
fn junk_on_a_clients_reply_queue_is_dropped_and_calls_get_their_own_answers() {
    runtime().block_on(async {
        let name = unique("junk");
        let mut registry = Registry::new().with_workers(2);
        registry.register_as(format!("{name}_slow"), First);
        registry.register_as(name.clone(), Counter);
        let server = serve(registry).await;
        let transport = AmqpTransport::connect(config())
            .await
            .expect("an AMQP client");
        let reply_queue = transport
            .reply_queue()
            .expect("connected, so a reply queue");
        let client = Client::new(transport.clone()).with_timeout(Duration::from_secs(10));

        // A call in flight while the junk arrives.
        let slow = tokio::spawn({
            let client = client.clone();
            let procedure = format!("{name}_slow.work");
            async move { client.call::<_, String>(&procedure, &(1_000u64,)).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;

        let (_connection, channel) = raw_channel().await;
        let json = || BasicProperties::default().with_content_type("application/json".into());
        let junk: Vec<(&str, BasicProperties, &[u8])> = vec![
            (
                "unknown correlation id",
                json()
                    .with_type("result".into())
                    .with_correlation_id("not-one-of-ours".into()),
                b"\"first\"",
            ),
            (
                "no correlation id",
                json().with_type("result".into()),
                b"\"first\"",
            ),
            (
                "garbage body",
                json()
                    .with_type("error".into())
                    .with_correlation_id("garbage".into()),
                b"\x00\xff{not json",
            ),
            (
                "no properties at all",
                BasicProperties::default(),
                b"\xde\xad\xbe\xef",
            ),
            (
                "a dead-lettered request of someone else",
                json()
                    .with_type("call".into())
                    .with_correlation_id("someone-else".into()),
                b"{}",
            ),
        ];
        for (what, properties, body) in junk {
            println!("publishing junk: {what}");
            publish(&channel, &reply_queue, properties, body).await;
        }

        assert_eq!(
            slow.await.expect("the call's task"),
            Ok("first".to_string()),
            "the call in flight got its own answer"
        );
        // And calls afterwards, several at once, each get theirs.
        let tags: Vec<String> = (0..8).map(|i| unique(&format!("after{i}"))).collect();
        let calls = tags.iter().map(|tag| {
            let client = client.clone();
            let procedure = format!("{name}.count");
            let tag = tag.clone();
            async move { client.call::<_, u64>(&procedure, &(tag,)).await }
        });
        for (tag, result) in tags.iter().zip(futures::future::join_all(calls).await) {
            assert_eq!(result, Ok(1), "{tag}");
        }
        assert_eq!(
            client
                .call::<_, u64>(&format!("{name}.count"), &(tags[0].clone(),))
                .await,
            Ok(2)
        );
        assert_eq!(
            transport.reply_queue().as_deref(),
            Some(reply_queue.as_str()),
            "the client kept its connection and reply queue"
        );
        server.shutdown().await;
        delete_queues(&name, &["count"]).await;
        delete_queues(&format!("{name}_slow"), &["work"]).await;
    });
}
