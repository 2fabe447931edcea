//! A consumer's text connection: the seed's protocol, one command then close.
//!
//! `handler method arg1 arg2 ...` ends at a newline, at the end of the stream, or after a
//! pause of [`ServerConfig::text_pause`](crate::ServerConfig::text_pause) with no more bytes
//! (a seed client sends one packet with no newline and waits). The answer is the result as
//! text, or `ERROR <kind>: <message>`, then a newline, then the connection is closed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rpc_core::text::{parse_command, render_error};
use rpc_core::{Call, Encoding, RpcError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

use crate::server::Context;

/// Numbers text calls for their tracing spans (binary calls carry the producer's id).
static TEXT_CALLS: AtomicU64 = AtomicU64::new(1);

/// Reads one command, answers it and closes the connection.
pub(crate) async fn serve(mut stream: TcpStream, context: Arc<Context>) {
    let line = tokio::select! {
        _ = context.shutdown.cancelled() => return,
        line = read_command(&mut stream, &context) => line,
    };
    let reply = match line {
        Ok(Some(line)) => run(&line, &context).await,
        Ok(None) => return,
        Err(err) => Err(err),
    };
    let mut answer = match reply {
        Ok(result) => result,
        Err(err) => render_error(&err).into_bytes(),
    };
    answer.push(b'\n');
    let write = async {
        stream.write_all(&answer).await?;
        stream.shutdown().await
    };
    match timeout(context.config.write_timeout, write).await {
        Ok(Ok(())) => linger(&mut stream).await,
        Ok(Err(err)) => tracing::debug!(%err, "text reply not delivered"),
        Err(_) => tracing::debug!("text client not reading its reply"),
    }
}

/// Reads and discards what the client still sends, for a moment, before closing: closing a
/// socket with unread bytes resets the connection, and the reset can destroy the reply
/// before the client reads it.
pub(crate) async fn linger<S: AsyncReadExt + Unpin>(stream: &mut S) {
    let drain = async {
        let mut sink = [0u8; 4096];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = timeout(LINGER, drain).await;
}

/// How long [`linger`] waits for the client to close its side.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads until a newline, the end of the stream or a pause; `None` when the connection broke.
async fn read_command(
    stream: &mut TcpStream,
    context: &Context,
) -> Result<Option<String>, RpcError> {
    let config = &context.config;
    let deadline = Instant::now() + config.text_timeout;
    let mut buf = Vec::with_capacity(256);
    loop {
        let pause = (Instant::now() + config.text_pause).min(deadline);
        match timeout_at(pause, stream.read_buf(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(_)) if buf.contains(&b'\n') => break,
            Ok(Ok(_)) if buf.len() > config.max_frame => {
                return Err(RpcError::Protocol(format!(
                    "text command longer than {} bytes",
                    config.max_frame
                )));
            }
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                tracing::debug!(%err, "text connection failed");
                return Ok(None);
            }
            Err(_) if Instant::now() >= deadline => {
                return Err(RpcError::Protocol(format!(
                    "command not completed within {:?}",
                    config.text_timeout
                )));
            }
            Err(_) if !buf.is_empty() => break,
            Err(_) => {}
        }
    }
    let end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    buf.truncate(end);
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| RpcError::Protocol("text command is not UTF-8".into()))
}

/// Dispatches one command line with the text encoding.
async fn run(line: &str, context: &Context) -> Result<Vec<u8>, RpcError> {
    let command = parse_command(line)?;
    tracing::debug!(procedure = %command.procedure, "text command");
    let call = Call::new(
        command.procedure,
        Encoding::Text,
        command.args.as_bytes().to_vec(),
    );
    let id = TEXT_CALLS.fetch_add(1, Ordering::Relaxed);
    // A text client cannot cancel: it only waits for its one answer.
    let cancel = tokio_util::sync::CancellationToken::new();
    context
        .registry
        .dispatch(format!("text-{id}"), call, cancel)
        .await
}
