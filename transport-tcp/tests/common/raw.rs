//! A producer's side of the binary protocol written by hand, for tests that send what the
//! pool never would, or watch how the consumer writes.

use std::time::Duration;

use rpc_core::encoding::to_bincode;
use rpc_core::{Call, Encoding, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use transport_tcp::TcpServer;

/// `Hello`, protocol 4 ([`transport_tcp::PROTOCOL_VERSION`]), replies up to 16 MiB.
pub const HELLO: [u8; 16] = [0, 0, 0, 12, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 1];

/// A `Request` frame (variant 1) for `procedure` with bincode `args`, as a producer sends it.
pub fn request_frame(id: u64, procedure: &str, args: Vec<u8>) -> Vec<u8> {
    let call = Call::new(procedure, Encoding::Bincode, args).with_timeout(Duration::from_secs(30));
    let body = to_bincode(&(1u32, Request { id, call })).expect("encode a request");
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Connects and completes the handshake.
pub async fn handshake(server: &TcpServer) -> TcpStream {
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    stream.write_all(&HELLO).await.expect("hello");
    read_welcome(&mut stream).await;
    stream
}

/// Reads the consumer's `Welcome` frame (variant 0; its length depends on the registry's
/// batch procedures) and checks its version.
pub async fn read_welcome(stream: &mut TcpStream) {
    let body = read_frame(stream).await;
    assert_eq!(&body[..8], &[0, 0, 0, 0, 4, 0, 0, 0], "{body:?}");
}

/// The body of the next frame the consumer sends.
pub async fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).await.expect("a frame");
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut body).await.expect("a frame's body");
    body
}
