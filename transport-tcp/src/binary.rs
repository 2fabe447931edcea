//! A consumer's binary connection: requests read in order, each dispatched in a task of its
//! own, replies written in the order they finish through one writer.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use rpc_core::{Reply, RpcError};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::timeout;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::frame::{ClientMessage, ServerCodec, ServerMessage, Welcome, PROTOCOL_VERSION};
use crate::server::Context;
use crate::text;

/// Serves one binary connection until the client closes it, it idles out, breaks the
/// protocol, or the server shuts down; then waits for its calls to be answered.
pub(crate) async fn serve(stream: TcpStream, context: Arc<Context>) {
    let config = &context.config;
    let (read, write) = stream.into_split();
    let mut frames = FramedRead::new(read, ServerCodec::new(config.max_frame));
    // Unbounded, yet bounded by `in_flight`: one reply per permit, plus control messages.
    let (replies, outbox) = mpsc::unbounded_channel();
    let broken = CancellationToken::new();
    let writer = tokio::spawn(write_replies(
        write,
        outbox,
        context.clone(),
        broken.clone(),
    ));
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));

    let mut violated = false;
    loop {
        // Back-pressure: at the limit, stop reading until a call finishes.
        let permit = tokio::select! {
            _ = context.shutdown.cancelled() => break,
            _ = broken.cancelled() => break,
            permit = in_flight.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let next = tokio::select! {
            _ = context.shutdown.cancelled() => break,
            _ = broken.cancelled() => break,
            next = timeout(config.idle_timeout, frames.next()) => next,
        };
        let message = match next {
            Err(_) if in_flight.available_permits() + 1 >= config.max_in_flight.max(1) => {
                tracing::debug!("idle connection closed");
                break;
            }
            Err(_) => continue,
            Ok(None) => break,
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(RpcError::Io(err)))) => {
                tracing::debug!(%err, "connection failed");
                break;
            }
            Ok(Some(Err(err))) => {
                tracing::warn!(%err, "protocol violation: closing the connection");
                let _ = replies.send(ServerMessage::Error(err));
                violated = true;
                break;
            }
        };
        match message {
            ClientMessage::Hello { version } if version == PROTOCOL_VERSION => {
                let welcome = Welcome {
                    version: PROTOCOL_VERSION,
                    workers: u32::try_from(context.registry.workers()).unwrap_or(u32::MAX),
                    max_frame: u32::try_from(config.max_frame).unwrap_or(u32::MAX),
                };
                let _ = replies.send(ServerMessage::Welcome(welcome));
            }
            ClientMessage::Hello { version } => {
                let err = RpcError::Protocol(format!(
                    "protocol version {version} is not supported; this consumer speaks {PROTOCOL_VERSION}"
                ));
                let _ = replies.send(ServerMessage::Error(err));
                violated = true;
                break;
            }
            ClientMessage::Request(request) => {
                let registry = context.registry.clone();
                let replies = replies.clone();
                context.tracker.spawn(
                    async move {
                        let result = registry.dispatch(request.id, request.call).await;
                        // The connection may be gone: that reply is lost with it.
                        let _ = replies.send(ServerMessage::Reply(Reply::new(request.id, result)));
                        drop(permit);
                    }
                    .in_current_span(),
                );
            }
        }
    }
    // Calls already read still answer: the writer ends when the last of them has.
    drop(replies);
    let _ = writer.await;
    if violated {
        text::linger(frames.get_mut()).await;
    }
}

/// Writes messages as they come, flushing once per batch, until every sender is gone or the
/// client stops reading for longer than the write timeout.
async fn write_replies(
    write: OwnedWriteHalf,
    mut outbox: mpsc::UnboundedReceiver<ServerMessage>,
    context: Arc<Context>,
    broken: CancellationToken,
) {
    let config = &context.config;
    let mut sink = FramedWrite::new(write, ServerCodec::new(config.max_frame));
    while let Some(message) = outbox.recv().await {
        let closing = matches!(message, ServerMessage::Error(_));
        let batch = async {
            sink.feed(message).await?;
            while let Ok(message) = outbox.try_recv() {
                sink.feed(message).await?;
            }
            sink.flush().await
        };
        match timeout(config.write_timeout, batch).await {
            Ok(Ok(())) if !closing => {}
            Ok(Ok(())) => break,
            Ok(Err(err)) => {
                tracing::debug!(%err, "write failed: closing the connection");
                broken.cancel();
                return;
            }
            Err(_) => {
                tracing::warn!("client not reading its replies: closing the connection");
                broken.cancel();
                return;
            }
        }
    }
    let _ = timeout(config.write_timeout, sink.close()).await;
}
