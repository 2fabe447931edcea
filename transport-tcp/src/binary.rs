//! A consumer's binary connection, served by one task: it reads requests, keeps their calls
//! in flight side by side, and writes each reply as soon as its call finishes.
//!
//! One task rather than a reader, a task per call and a writer: each hop between tasks is a
//! wake-up, often on another thread, and the calls themselves already run elsewhere (on
//! blocking threads or in tasks the registry spawns). Here a call costs no hop of our own.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, SinkExt, StreamExt};
use rpc_core::{Registry, Reply, Request, RpcError};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, Instant};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::frame::{ClientMessage, ServerCodec, ServerMessage, Welcome, PROTOCOL_VERSION};
use crate::server::Context;
use crate::text;

type Sink = FramedWrite<OwnedWriteHalf, ServerCodec>;

/// The longest wait between two checks of a connection's idleness.
const IDLE_CHECK: Duration = Duration::from_secs(1);

enum Event {
    Reply(Reply),
    Frame(Option<Result<ClientMessage, RpcError>>),
    Stop,
    Idle,
}

/// Serves one binary connection until the client closes it, it idles out, breaks the
/// protocol, or the server shuts down; the calls already read are answered first.
pub(crate) async fn serve(stream: TcpStream, context: Arc<Context>) {
    let config = &context.config;
    let (read, write) = stream.into_split();
    let mut frames = FramedRead::new(read, ServerCodec::new(config.max_frame));
    let mut sink = FramedWrite::new(write, ServerCodec::new(config.max_frame));
    let mut calls = FuturesUnordered::new();
    // Each call in flight by request id, to cancel it when its caller gives up.
    let mut in_flight: HashMap<u64, CancellationToken> = HashMap::new();
    let limit = config.max_in_flight.max(1);
    let mut reading = true;
    let mut violated = false;
    // Idleness is checked every second rather than with one long timer: the tokio driver then
    // always has a timer due soon, and the deadline each call registers never has to wake it
    // early (an eventfd write and an extra epoll_wait per call otherwise). Activity is a flag,
    // not a clock read per frame.
    let check_every = config.idle_timeout.min(IDLE_CHECK);
    let mut active = false;
    let mut quiet_for = Duration::ZERO;
    let idle = sleep(check_every);
    tokio::pin!(idle);

    while reading || !calls.is_empty() {
        let event = tokio::select! {
            // Back-pressure: at the limit, stop reading until a call finishes.
            frame = frames.next(), if reading && calls.len() < limit => Event::Frame(frame),
            Some(reply) = calls.next(), if !calls.is_empty() => Event::Reply(reply),
            _ = context.shutdown.cancelled(), if reading => Event::Stop,
            _ = &mut idle, if reading => Event::Idle,
            else => break,
        };
        let message = match event {
            Event::Reply(reply) => {
                active = true;
                if !write_replies(&mut sink, reply, &mut calls, &mut in_flight, &context).await {
                    return;
                }
                continue;
            }
            Event::Stop => {
                reading = false;
                continue;
            }
            Event::Idle => {
                quiet_for = match std::mem::take(&mut active) || !calls.is_empty() {
                    true => Duration::ZERO,
                    false => quiet_for + check_every,
                };
                if quiet_for >= config.idle_timeout {
                    tracing::debug!("idle connection closed");
                    break;
                }
                idle.as_mut().reset(Instant::now() + check_every);
                continue;
            }
            Event::Frame(None) => {
                reading = false;
                continue;
            }
            Event::Frame(Some(Err(RpcError::Io(err)))) => {
                tracing::debug!(%err, "connection failed");
                reading = false;
                continue;
            }
            Event::Frame(Some(Err(err))) => {
                tracing::warn!(%err, "protocol violation: closing the connection");
                let _ = send(&mut sink, ServerMessage::Error(err), &context).await;
                violated = true;
                break;
            }
            Event::Frame(Some(Ok(message))) => message,
        };
        active = true;
        match message {
            ClientMessage::Request(request) => {
                let cancel = CancellationToken::new();
                in_flight.insert(request.id, cancel.clone());
                calls.push(dispatch(&context.registry, request, cancel));
            }
            ClientMessage::Cancel { id } => {
                // Takes effect at once: a queued call is never handed to a worker, a running
                // one sees its `Cancellation` fire. Its reply is not sent.
                if let Some(cancel) = in_flight.remove(&id) {
                    tracing::debug!(id, "cancelled by the caller");
                    cancel.cancel();
                }
            }
            ClientMessage::Ping => {
                if !send(&mut sink, ServerMessage::Pong, &context).await {
                    return;
                }
            }
            ClientMessage::Hello { version, max_frame } if version == PROTOCOL_VERSION => {
                // Replies the producer would refuse become protocol errors here instead.
                sink.encoder_mut().limit_encoding(max_frame as usize);
                let welcome = Welcome {
                    version: PROTOCOL_VERSION,
                    workers: u32::try_from(context.registry.workers()).unwrap_or(u32::MAX),
                    max_frame: u32::try_from(config.max_frame).unwrap_or(u32::MAX),
                };
                if !send(&mut sink, ServerMessage::Welcome(welcome), &context).await {
                    return;
                }
            }
            ClientMessage::Hello { version, .. } => {
                let err = RpcError::Protocol(format!(
                    "protocol version {version} is not supported; this consumer speaks {PROTOCOL_VERSION}"
                ));
                let _ = send(&mut sink, ServerMessage::Error(err), &context).await;
                violated = true;
                break;
            }
        }
    }
    let _ = timeout(
        config.write_timeout,
        SinkExt::<ServerMessage>::close(&mut sink),
    )
    .await;
    if violated {
        text::linger(frames.get_mut()).await;
    }
}

/// Runs one request; its reply carries its id.
fn dispatch(
    registry: &Registry,
    request: Request,
    cancel: CancellationToken,
) -> impl Future<Output = Reply> + '_ {
    let id = request.id;
    registry
        .dispatch(id, request.call, cancel)
        .map(move |result| Reply::new(id, result))
}

/// Writes `first` and every other reply already finished, with one flush. `false` when the
/// connection is broken or the client stopped reading for longer than the write timeout.
async fn write_replies<F>(
    sink: &mut Sink,
    first: Reply,
    calls: &mut FuturesUnordered<F>,
    in_flight: &mut HashMap<u64, CancellationToken>,
    context: &Context,
) -> bool
where
    F: Future<Output = Reply>,
{
    let batch = async {
        // A call no longer in flight was cancelled: its caller forgot it, so no reply.
        if in_flight.remove(&first.id).is_some() {
            sink.feed(ServerMessage::Reply(first)).await?;
        }
        while let Some(Some(reply)) = calls.next().now_or_never() {
            if in_flight.remove(&reply.id).is_some() {
                sink.feed(ServerMessage::Reply(reply)).await?;
            }
        }
        SinkExt::<ServerMessage>::flush(sink).await
    };
    settle(timeout(context.config.write_timeout, batch).await)
}

/// Writes one message and flushes.
async fn send(sink: &mut Sink, message: ServerMessage, context: &Context) -> bool {
    settle(timeout(context.config.write_timeout, sink.send(message)).await)
}

fn settle(written: Result<Result<(), RpcError>, tokio::time::error::Elapsed>) -> bool {
    match written {
        Ok(Ok(())) => true,
        Ok(Err(err)) => {
            tracing::debug!(%err, "write failed: closing the connection");
            false
        }
        Err(_) => {
            tracing::warn!("client not reading its replies: closing the connection");
            false
        }
    }
}
