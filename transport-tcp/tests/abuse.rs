//! Bad input and greedy clients: each costs at most its own connection.

mod common;

use std::time::Duration;

use common::raw::{handshake, read_frame, read_welcome, request_frame, HELLO};
use common::read_to_close;
use futures::future::join_all;
use rand::{Rng, SeedableRng};
use rpc_core::encoding::{from_bincode, to_bincode};
use rpc_core::{Client, Reply, RpcError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use transport_tcp::{TcpServer, TcpServerConfig, DEFAULT_MAX_FRAME};

async fn server(config: TcpServerConfig) -> TcpServer {
    TcpServer::bind("127.0.0.1:0", common::registry(2), config)
        .await
        .expect("bind")
}

/// The server still answers a well-behaved pool.
async fn still_serves(server: &TcpServer) {
    let pool = common::pool_at(&[server.local_addr()]);
    let client = Client::new(pool).with_timeout(Duration::from_secs(10));
    let echo: Result<String, RpcError> = client.call("work.echo", &("alive",)).await;
    assert_eq!(echo.as_deref(), Ok("alive"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_close_only_their_connection() {
    let mut config = TcpServerConfig::default();
    config.text_pause = Duration::from_millis(50);
    let server = server(config).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..40 {
        let len = rng.random_range(1..2048);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if round % 2 == 0 {
            bytes[0] = 0; // half of them look like binary frames
        }
        let mut stream = TcpStream::connect(server.local_addr())
            .await
            .expect("connect");
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
        let _ = read_to_close(&mut stream).await;
    }
    still_serves(&server).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_gib_length_prefix_is_a_protocol_error() {
    let server = server(TcpServerConfig::default()).await;
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    stream.write_all(&HELLO).await.expect("hello");
    stream
        .write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .expect("prefix");
    let answer = read_to_close(&mut stream).await;
    // The welcome (variant 0), then an `Error` frame: variant 2, `Protocol` (7).
    let welcome_len = 4 + u32::from_be_bytes(answer[..4].try_into().expect("a prefix")) as usize;
    assert_eq!(&answer[4..8], &[0, 0, 0, 0], "{answer:?}");
    let error = &answer[welcome_len..];
    assert_eq!(&error[4..12], &[2, 0, 0, 0, 7, 0, 0, 0], "{answer:?}");
    assert!(String::from_utf8_lossy(error).contains("exceeds the limit"));

    // Without a hello, 0xff is not a frame's first byte: a text-mode protocol error.
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    stream
        .write_all(&[0xff, 0xff, 0xff, 0xff])
        .await
        .expect("prefix");
    let answer = read_to_close(&mut stream).await;
    assert!(answer.starts_with(b"ERROR Protocol: "), "{answer:?}");

    still_serves(&server).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_blocks_nobody_and_is_dropped() {
    let mut config = TcpServerConfig::default();
    config.handshake_timeout = Duration::from_millis(500);
    config.max_connections = 8;
    let server = server(config).await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(
            TcpStream::connect(server.local_addr())
                .await
                .expect("connect"),
        );
    }
    still_serves(&server).await;
    for mut stream in silent {
        assert!(read_to_close(&mut stream).await.is_empty());
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_opened_and_closed() {
    let server = server(TcpServerConfig::default()).await;
    let addr = server.local_addr();
    for batch in 0..10 {
        let connections = (0..100).map(|i| async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            match (batch + i) % 3 {
                0 => {} // connect and close
                1 => {
                    stream.write_all(&HELLO).await.expect("hello");
                    read_welcome(&mut stream).await;
                }
                _ => {
                    stream.write_all(b"work echo hi\n").await.expect("command");
                    assert_eq!(read_to_close(&mut stream).await, b"hi\n");
                }
            }
        });
        join_all(connections).await;
    }
    still_serves(&server).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_limit_a_connection_is_closed() {
    let mut config = TcpServerConfig::default();
    config.max_connections = 2;
    let server = server(config).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.local_addr())
            .await
            .expect("connect");
        stream.write_all(&HELLO).await.expect("hello");
        read_welcome(&mut stream).await;
        held.push(stream);
    }
    let mut third = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    let _ = third.write_all(&HELLO).await;
    assert!(read_to_close(&mut third).await.is_empty());
    drop(held);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_protocol_version_is_refused() {
    let server = server(TcpServerConfig::default()).await;
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    let mut hello = HELLO;
    hello[8] = 1; // version 1: a producer from before `Cancel` existed
    stream.write_all(&hello).await.expect("hello");
    let answer = read_to_close(&mut stream).await;
    // An `Error` frame (variant 2) carrying `Protocol` (7), then the connection is closed.
    assert_eq!(&answer[4..12], &[2, 0, 0, 0, 7, 0, 0, 0], "{answer:?}");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.contains("version 1 is not supported; this consumer speaks 4"),
        "{text}"
    );
    server.shutdown().await;
}

/// The message of the `Error` frame carrying `Protocol` (7) that starts `frames`, if it does.
fn protocol_error(frames: &[u8]) -> Option<String> {
    let body = frames.get(4..)?;
    if body.get(..8)? != [2, 0, 0, 0, 7, 0, 0, 0] {
        return None;
    }
    let len = u64::from_le_bytes(body.get(8..16)?.try_into().ok()?) as usize;
    let message = body.get(16..16usize.checked_add(len)?)?;
    Some(String::from_utf8_lossy(message).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_one_byte_over_the_limit_is_a_protocol_error() {
    let server = server(TcpServerConfig::default()).await;
    let mut stream = handshake(&server).await;
    let over = u32::try_from(DEFAULT_MAX_FRAME + 1).expect("the limit fits a prefix");
    stream.write_all(&over.to_be_bytes()).await.expect("prefix");
    stream.write_all(&[1, 0, 0, 0]).await.expect("body");
    let answer = read_to_close(&mut stream).await;
    let message = protocol_error(&answer).unwrap_or_else(|| panic!("{answer:?}"));
    assert!(message.contains("exceeds the limit"), "{message}");
    still_serves(&server).await;
    server.shutdown().await;

    // At a small limit: a frame of exactly the limit is served, one byte more is refused.
    let mut config = TcpServerConfig::default();
    config.max_frame = 256;
    let server = self::server(config).await;
    let base = request_frame(1, "work.echo", to_bincode(&("",)).expect("args")).len() - 4;
    for (len, served) in [(256, true), (257, false)] {
        let text = "x".repeat(len - base);
        let frame = request_frame(1, "work.echo", to_bincode(&(text.as_str(),)).expect("args"));
        assert_eq!(frame.len() - 4, len);
        let mut stream = handshake(&server).await;
        stream.write_all(&frame).await.expect("request");
        if served {
            let body = read_frame(&mut stream).await;
            assert_eq!(&body[..4], &[1, 0, 0, 0], "a reply: {body:?}");
            let reply: Reply = from_bincode(&body[4..]).expect("decode the reply");
            let echoed: String = from_bincode(&reply.into_result().expect("ok")).expect("text");
            assert_eq!(echoed, text);
        } else {
            let answer = read_to_close(&mut stream).await;
            let message = protocol_error(&answer).unwrap_or_else(|| panic!("{answer:?}"));
            assert!(message.contains("exceeds the limit of 256"), "{message}");
        }
    }
    still_serves(&server).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frames_are_protocol_errors() {
    let server = server(TcpServerConfig::default()).await;
    let whole = request_frame(1, "work.echo", to_bincode(&("cut short",)).expect("args"));
    // Half a request, a length prefix alone, half a length prefix, and (with no hello) three
    // zero bytes.
    let cases: [(bool, &[u8]); 4] = [
        (true, &whole[..whole.len() / 2]),
        (true, &whole[..4]),
        (true, &whole[..2]),
        (false, &[0, 0, 0]),
    ];
    for (hello, bytes) in cases {
        let mut stream = match hello {
            true => handshake(&server).await,
            false => TcpStream::connect(server.local_addr())
                .await
                .expect("connect"),
        };
        stream.write_all(bytes).await.expect("truncated frame");
        stream.shutdown().await.expect("half-close");
        let answer = read_to_close(&mut stream).await;
        let message = protocol_error(&answer).unwrap_or_else(|| panic!("{bytes:?}: {answer:?}"));
        assert!(message.contains("closed inside a frame"), "{message}");
    }
    still_serves(&server).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_runs_at_most_max_in_flight_calls() {
    let mut config = TcpServerConfig::default();
    config.max_in_flight = 2;
    let runs = common::Runs::default();
    let server = TcpServer::bind("127.0.0.1:0", common::counted_registry(4, &runs), config)
        .await
        .expect("bind");
    let mut stream = handshake(&server).await;
    let args = to_bincode(&("in-flight", 1500u64)).expect("args");
    for id in 1..=6 {
        let frame = request_frame(id, "work.slow", args.clone());
        stream.write_all(&frame).await.expect("request");
    }
    // Four workers are free, but the connection holds only two calls: the others wait unread.
    common::eventually(Duration::from_secs(10), "two calls run", || {
        runs.of("in-flight") >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runs.of("in-flight"), 2);
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).await.expect("a reply");
    common::eventually(Duration::from_secs(10), "the next call runs", || {
        runs.of("in-flight") > 2
    })
    .await;
    drop(stream);
    still_serves(&server).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_held_back_then_dropped() {
    let mut config = TcpServerConfig::default();
    config.max_in_flight = 4;
    config.write_timeout = Duration::from_secs(1);
    let server = self::server(config).await;
    let stream = handshake(&server).await;
    let (_unread, mut write) = stream.into_split();
    // Each request is 4 KiB and asks for 16 KiB back: the budget is 64 MiB of requests, far
    // more than the sockets' buffers hold, and would be 256 MiB of replies held unsent.
    let text = "x".repeat(4096);
    let frame = request_frame(1, "work.repeat", to_bincode(&(text, 4usize)).expect("args"));
    const BUDGET: usize = 16_384;
    let pushed = tokio::time::timeout(Duration::from_secs(60), async {
        for sent in 0..BUDGET {
            if let Err(err) = write.write_all(&frame).await {
                return (sent, Some(err));
            }
        }
        (BUDGET, None)
    });
    let (sent, err) = pushed
        .await
        .expect("the consumer drops the connection in time");
    // The consumer stopped reading (back-pressure), then closed the connection it could not
    // write to: the write fails rather than blocking or succeeding forever.
    assert!(sent < BUDGET, "the consumer read every request");
    let err = err.expect("the write failed");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{err}"
    );
    still_serves(&server).await;
    server.shutdown().await;
}
