//! Bad input and greedy clients: each costs at most its own connection.

mod common;

use std::time::Duration;

use futures::future::join_all;
use rand::{Rng, SeedableRng};
use rpc_core::{Client, RpcError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use transport_tcp::{Server, ServerConfig};

/// Hello, protocol 1, replies up to 16 MiB.
const HELLO: [u8; 16] = [0, 0, 0, 12, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1];

async fn server(config: ServerConfig) -> Server {
    Server::bind("127.0.0.1:0", common::registry(2), config)
        .await
        .expect("bind")
}

/// Everything the consumer sends until it closes the connection (a reset counts as closed).
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.expect("the consumer closes the connection");
    answer
}

/// The server still answers a well-behaved pool.
async fn still_serves(server: &Server) {
    let pool = common::pool_at(&[server.local_addr()]);
    let client = Client::new(pool).with_timeout(Duration::from_secs(10));
    let echo: Result<String, RpcError> = client.call("work.echo", &("alive",)).await;
    assert_eq!(echo.as_deref(), Ok("alive"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_close_only_their_connection() {
    let mut config = ServerConfig::default();
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
    let server = server(ServerConfig::default()).await;
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    stream.write_all(&HELLO).await.expect("hello");
    stream
        .write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .expect("prefix");
    let answer = read_to_close(&mut stream).await;
    // The welcome (4 + 16 bytes), then an `Error` frame: variant 2, `Protocol` (7).
    assert_eq!(&answer[..4], &[0, 0, 0, 16], "{answer:?}");
    let error = &answer[20..];
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
    let mut config = ServerConfig::default();
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
    let server = server(ServerConfig::default()).await;
    let addr = server.local_addr();
    for batch in 0..10 {
        let connections = (0..100).map(|i| async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            match (batch + i) % 3 {
                0 => {} // connect and close
                1 => {
                    stream.write_all(&HELLO).await.expect("hello");
                    let mut welcome = [0u8; 20];
                    stream.read_exact(&mut welcome).await.expect("welcome");
                    assert_eq!(&welcome[..4], &[0, 0, 0, 16]);
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
    let mut config = ServerConfig::default();
    config.max_connections = 2;
    let server = server(config).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.local_addr())
            .await
            .expect("connect");
        stream.write_all(&HELLO).await.expect("hello");
        let mut welcome = [0u8; 20];
        stream.read_exact(&mut welcome).await.expect("welcome");
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
async fn another_protocol_version_is_refused() {
    let server = server(ServerConfig::default()).await;
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    let mut hello = HELLO;
    hello[8] = 2; // version 2
    stream.write_all(&hello).await.expect("hello");
    let answer = read_to_close(&mut stream).await;
    // An `Error` frame (variant 2) carrying `Protocol` (7), then the connection is closed.
    assert_eq!(&answer[4..12], &[2, 0, 0, 0, 7, 0, 0, 0], "{answer:?}");
    assert!(String::from_utf8_lossy(&answer).contains("version 2"));
    server.shutdown().await;
}
