//! The AMQP transport's wire on a real broker: routing failures, malformed messages published
//! by hand, expiry through the dead-letter exchange, direct reply-to, TLS URLs.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::BasicProperties;
use rpc_core::{Call, Encoding, Registry, RpcError, Transport};
use transport_amqp::{AmqpTransport, ReplyMode};

use support::{
    bind_to_dlx, call_properties, client, config, death_reason, declare_request_queue,
    delete_queues, emptied, message_type, publish, raw_channel, raw_reply_queue, reply_of, runtime,
    serve, serve_counter, unique, Counter,
};

#[test]
fn unroutable_call_fails_fast() {
    runtime().block_on(async {
        let client = client().await.with_timeout(Duration::from_secs(10));
        let started = Instant::now();
        let call = Call::new(
            format!("{}.add", unique("nobody")),
            Encoding::Json,
            b"{}".to_vec(),
        );
        match client.send(call).await {
            Err(RpcError::UnknownProcedure(_)) => {}
            other => panic!("expected unknown procedure, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    });
}

#[test]
fn malformed_messages_get_error_replies_and_are_not_requeued() {
    runtime().block_on(async {
        let (name, queue, server) = serve_counter("malformed", config()).await;
        let (_connection, channel) = raw_channel().await;
        let (reply_queue, mut replies) = raw_reply_queue(&channel).await;

        let cases: [(&str, Option<&str>, &[u8], RpcError); 4] = [
            (
                "garbage-json",
                Some("application/json"),
                b"\x00\xffnot json",
                RpcError::BadArguments(String::new()),
            ),
            (
                "wrong-type",
                Some("image/png"),
                b"{\"tag\": \"x\"}",
                RpcError::Protocol(String::new()),
            ),
            (
                "garbage-bincode",
                Some(transport_amqp::BINCODE_CONTENT_TYPE),
                b"\x01",
                RpcError::BadArguments(String::new()),
            ),
            (
                "missing-args",
                None,
                b"{}",
                RpcError::BadArguments(String::new()),
            ),
        ];
        for (id, content_type, body, expected) in cases {
            let mut properties = BasicProperties::default()
                .with_correlation_id(id.into())
                .with_reply_to(reply_queue.as_str().into());
            if let Some(content_type) = content_type {
                properties = properties.with_content_type(content_type.into());
            }
            publish(&channel, &queue, properties, body).await;
            let reply = tokio::time::timeout(Duration::from_secs(10), replies.next())
                .await
                .expect("a reply in time")
                .expect("a reply")
                .expect("a delivery");
            let properties = &reply.properties;
            assert_eq!(
                properties.correlation_id().as_ref().map(|c| c.as_str()),
                Some(id)
            );
            assert_eq!(message_type(&reply), Some("error"));
            assert_eq!(reply_of(&reply), Err(expected.kind()), "{id}");
        }

        // No reply_to: run, acked, its result dropped; never requeued.
        let tag = unique("tag");
        let body = serde_json::to_vec(&serde_json::json!({ "tag": tag })).expect("json");
        let properties = BasicProperties::default().with_content_type("application/json".into());
        publish(&channel, &queue, properties, &body).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let client = client().await;
        assert_eq!(
            client.call::<_, u64>(&queue, &(tag,)).await,
            Ok(2),
            "ran exactly once before"
        );
        // Acked, not requeued: once the consumer is gone nothing is left in the queue (an
        // unacked message would be back in it; while the consumer holds it, it is not counted).
        server.shutdown().await;
        assert!(emptied(&channel, &queue).await, "the queue emptied");
        delete_queues(&name, &["count"]).await;
    });
}

#[test]
fn expired_request_comes_back_through_the_dead_letter_exchange() {
    runtime().block_on(async {
        let (_connection, channel) = raw_channel().await;
        let queue = unique("unserved");
        declare_request_queue(&channel, &queue, config().topology).await;
        let (reply_queue, mut replies) = raw_reply_queue(&channel).await;
        bind_to_dlx(&channel, &reply_queue).await;
        let properties = call_properties("expiring", &reply_queue).with_expiration("200".into());
        let started = Instant::now();
        publish(&channel, &queue, properties, b"{}").await;
        let back = tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await
            .expect("dead-lettered in time")
            .expect("a message")
            .expect("a delivery");
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            back.properties.kind().as_ref().map(|t| t.as_str()),
            Some("call")
        );
        assert_eq!(death_reason(&back).as_deref(), Some("expired"));
        let _ = channel
            .queue_delete(
                queue.as_str().into(),
                lapin::options::QueueDeleteOptions::default(),
            )
            .await;
    });
}

#[test]
fn direct_reply_to_round_trips() {
    runtime().block_on(async {
        let name = unique("direct");
        let mut registry = Registry::new();
        registry.register_as(name.clone(), Counter);
        let server = serve(registry).await;
        let transport = AmqpTransport::connect(config().with_reply_mode(ReplyMode::DirectReplyTo))
            .await
            .expect("a direct reply-to client");
        assert_eq!(
            transport.reply_queue().as_deref(),
            Some("amq.rabbitmq.reply-to")
        );
        let call = Call::new(
            format!("{name}.count"),
            Encoding::Json,
            br#"{"tag": "d"}"#.to_vec(),
        );
        assert_eq!(transport.call(call).await.as_deref(), Ok(&b"1"[..]));
        let unknown = Call::new(format!("{name}.nothing"), Encoding::Json, b"{}".to_vec());
        assert!(matches!(
            transport.call(unknown).await,
            Err(RpcError::UnknownProcedure(_))
        ));
        server.shutdown().await;
        delete_queues(&name, &["count"]).await;
    });
}

#[test]
fn an_overlong_procedure_name_is_refused_not_fatal() {
    runtime().block_on(async {
        let client = client().await;
        let call = Call::new("x".repeat(300), Encoding::Json, b"{}".to_vec());
        assert!(matches!(
            client.send(call).await,
            Err(RpcError::UnknownProcedure(_))
        ));
        let call = Call::new(
            format!("{}.add", unique("nobody")),
            Encoding::Json,
            b"{}".to_vec(),
        );
        assert!(matches!(
            client.send(call).await,
            Err(RpcError::UnknownProcedure(_))
        ));
    });
}

#[test]
fn amqps_urls_speak_tls() {
    runtime().block_on(async {
        // The local broker speaks plain AMQP on 5672: a TLS client fails its handshake there,
        // which shows that amqps:// is understood and TLS is built in (not refused outright).
        let config = transport_amqp::AmqpConfig::new("amqps://guest:secret@127.0.0.1:5672/%2f");
        let err = tokio::time::timeout(Duration::from_secs(20), AmqpTransport::connect(config))
            .await
            .expect("the handshake failed in time")
            .expect_err("no TLS on the plain port");
        let message = err.to_string();
        println!("{message}");
        assert!(
            message.contains("amqps://guest:***@127.0.0.1:5672"),
            "{message}"
        );
        assert!(!message.contains("secret"), "{message}");
    });
}
