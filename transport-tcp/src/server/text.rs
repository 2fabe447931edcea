//! A consumer's text connection: the seed's protocol, one command then close.
//!
//! `handler method arg1 arg2 ...` ends at a newline, at the end of the stream, or after a
//! pause of [`TcpServerConfig::text_pause`](crate::TcpServerConfig::text_pause) with no more bytes
//! (a seed client sends one packet with no newline and waits). The answer is the result as
//! text, or `ERROR <kind>: <message>`, then a newline, then the connection is closed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rpc_core::text::{parse_command, render_error};
use rpc_core::{Call, Encoding, RpcError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::linger::linger;
use crate::error::Error;

/// Numbers text calls for their tracing spans (binary calls carry the producer's id).
static TEXT_CALLS: AtomicU64 = AtomicU64::new(1);

/// Reads one command (starting with `first`, bytes already read), answers it and closes the
/// connection. With a shared secret and no `allow_text_without_secret`, the command is
/// refused unread: a text client cannot prove it knows the secret.
pub(crate) async fn serve<S>(mut stream: S, first: Vec<u8>, context: Arc<Context>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = &context.config;
    let reply = if config.secret.is_some() && !config.allow_text_without_secret {
        tracing::warn!("text command refused: this consumer requires authentication");
        Err(RpcError::Protocol(
            "this consumer requires authentication: text commands are refused (use a producer with the shared secret)".into(),
        ))
    } else {
        let line = tokio::select! {
            _ = context.shutdown.cancelled() => return,
            line = read_command(&mut stream, first, &context) => line,
        };
        match line {
            Ok(Some(line)) => run(&line, &context).await,
            Ok(None) => return,
            Err(err) => Err(err.into()),
        }
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

/// Reads until a newline, the end of the stream or a pause; `None` when the connection broke.
async fn read_command<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut buf: Vec<u8>,
    context: &Context,
) -> Result<Option<String>, Error> {
    let config = &context.config;
    let deadline = Instant::now() + config.text_timeout;
    buf.reserve(256);
    loop {
        let pause = (Instant::now() + config.text_pause).min(deadline);
        match timeout_at(pause, stream.read_buf(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(_)) if buf.contains(&b'\n') => break,
            Ok(Ok(_)) if buf.len() > config.max_frame => {
                return Err(Error::TextTooLong(config.max_frame));
            }
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                tracing::debug!(%err, "text connection failed");
                return Ok(None);
            }
            Err(_) if Instant::now() >= deadline => {
                return Err(Error::TextTimeout(config.text_timeout));
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
        .map_err(|_| Error::TextNotUtf8)
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
    let cancel = CancellationToken::new();
    context
        .registry
        .dispatch(format!("text-{id}"), call, cancel)
        .await
}
