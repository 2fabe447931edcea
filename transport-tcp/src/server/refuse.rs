//! Clients refused before they are served, each told why in a form it can read: a plain
//! client on a TLS consumer, a TLS client on a plain one.

use bytes::BytesMut;
use rpc_core::text::render_error;
use rpc_core::RpcError;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::codec::Encoder;

use super::context::Context;
use super::linger::linger;
use crate::error::Error;
use crate::frame::{ServerCodec, ServerMessage};

/// A plain client on a consumer that requires TLS: a binary client gets an `Error` frame, a
/// text client an `ERROR` line, both saying that TLS is required.
pub(crate) async fn plain_client(stream: TcpStream, binary: bool, context: &Context) {
    let answer = match binary {
        true => {
            let mut frame = BytesMut::new();
            let error = ServerMessage::Error(Error::TlsRequired.into());
            match ServerCodec::new(context.config.max_frame).encode(error, &mut frame) {
                Ok(()) => frame.to_vec(),
                Err(err) => return tracing::debug!(%err, "refusal not encoded"),
            }
        }
        false => line(Error::TlsRequired.into()),
    };
    answer_and_close(stream, &answer, context).await;
}

/// A TLS client on a plain consumer: it cannot read anything but TLS, so it gets an `ERROR`
/// line (which its TLS library reports as a reply that is not TLS) for anyone looking at the
/// bytes, and the connection is closed.
pub(crate) async fn tls_client(stream: TcpStream, context: &Context) {
    let error = RpcError::Protocol("this consumer does not use TLS".into());
    answer_and_close(stream, &line(error), context).await;
}

fn line(error: RpcError) -> Vec<u8> {
    let mut line = render_error(&error).into_bytes();
    line.push(b'\n');
    line
}

async fn answer_and_close(mut stream: TcpStream, answer: &[u8], context: &Context) {
    let write = async {
        stream.write_all(answer).await?;
        stream.shutdown().await
    };
    if let Ok(Ok(())) = timeout(context.config.write_timeout, write).await {
        linger(&mut stream).await;
    }
}
