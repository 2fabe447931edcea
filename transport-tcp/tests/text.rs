//! Text mode, as the seed's clients and `nc` speak it.

mod common;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use transport_tcp::{TcpServer, TcpServerConfig};

async fn server() -> TcpServer {
    TcpServer::bind(
        "127.0.0.1:0",
        common::registry(1),
        TcpServerConfig::default(),
    )
    .await
    .expect("bind")
}

/// Reads until the consumer closes the connection, within a generous bound.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the consumer answers and closes")
        .expect("read");
    String::from_utf8(answer).expect("UTF-8 answer")
}

async fn ask(server: &TcpServer, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    stream.write_all(bytes).await.expect("write");
    read_to_close(&mut stream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_client_sends_one_packet_without_newline_and_waits() {
    let server = server().await;
    let started = Instant::now();
    assert_eq!(ask(&server, b"work echo hello seed").await, "hello seed\n");
    assert!(started.elapsed() < Duration::from_secs(5));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newline_terminated_command() {
    let server = server().await;
    assert_eq!(
        ask(&server, b"work echo two  spaces\n").await,
        "two  spaces\n"
    );
    assert_eq!(ask(&server, b"work.echo dotted\r\n").await, "dotted\n");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_closed_client() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    stream.write_all(b"work slow half 10").await.expect("write");
    stream.shutdown().await.expect("half-close");
    assert_eq!(read_to_close(&mut stream).await, "half\n");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_line() {
    let server = server().await;
    let unknown = ask(&server, b"work nothing\n").await;
    assert!(unknown.starts_with("ERROR UnknownProcedure: "), "{unknown}");
    let bad = ask(&server, b"work slow tag notanumber\n").await;
    assert!(bad.starts_with("ERROR BadArguments: "), "{bad}");
    assert!(bad.contains("`ms`"), "{bad}");
    let empty = ask(&server, b"   \n").await;
    assert!(empty.starts_with("ERROR Protocol: "), "{empty}");
    assert_eq!(empty.lines().count(), 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_command_is_cut_off() {
    let mut config = TcpServerConfig::default();
    config.text_timeout = Duration::from_millis(600);
    config.text_pause = Duration::from_millis(300);
    let server = TcpServer::bind("127.0.0.1:0", common::registry(1), config)
        .await
        .expect("bind");
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    // One byte every 100 ms: never a pause long enough to end the command.
    let trickle = async {
        for _ in 0..100 {
            if stream.write_all(b"w").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), trickle).await;
    let answer = read_to_close(&mut stream).await;
    assert!(answer.starts_with("ERROR Protocol: "), "{answer}");
    server.shutdown().await;
}
