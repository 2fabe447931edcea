//! The write side of a producer's connection: requests are encoded into one buffer, and
//! written either at once by the call itself, or in batches by a writer task.
//!
//! A call alone on its connection writes its frame itself, saving a task switch (and on a
//! multi-threaded runtime, often a wake-up of another thread) on the path that decides
//! one-at-a-time latency. When calls are in flight side by side, each one only appends its
//! frame and the writer task writes everything that accumulated with one system call.
//!
//! Writes use `try_write` under the buffer's lock and never await while holding it, so a call
//! dropped at any point leaves whole frames behind for the writer task: the stream never
//! carries half a frame followed by another.
//!
//! Over TLS there is no `try_write` (every write goes through rustls): the writer task owns
//! the stream and writes every batch itself, with `write_all` on what accumulated.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio_util::codec::Encoder;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::frame::{ClientCodec, ClientMessage, Outgoing};

/// Where a connection's frames go.
pub(crate) enum WriteSide {
    /// A plain socket: calls may write to it themselves.
    Socket(OwnedWriteHalf),
    /// A stream only the writer task writes to (TLS).
    Stream(Box<dyn AsyncWrite + Send + Unpin>),
}

/// The shared write side of one connection.
#[derive(Debug)]
pub(crate) struct Writer {
    /// The plain socket, written to by calls and the writer task; `None` over TLS, where the
    /// writer task owns the stream.
    socket: Option<OwnedWriteHalf>,
    state: Mutex<State>,
    /// Wakes the writer task when frames wait in the buffer.
    wake: Notify,
}

#[derive(Debug)]
struct State {
    buffer: BytesMut,
    codec: ClientCodec,
    /// The writer task owns the buffer's flushing until it has emptied it.
    busy: bool,
}

impl Writer {
    /// A writer on `socket`, and the task that writes its batches until `closed` fires.
    pub(crate) fn start(side: WriteSide, max_frame: usize, closed: CancellationToken) -> Arc<Self> {
        let (socket, stream) = match side {
            WriteSide::Socket(socket) => (Some(socket), None),
            WriteSide::Stream(stream) => (None, Some(stream)),
        };
        let writer = Arc::new(Self {
            socket,
            state: Mutex::new(State {
                buffer: BytesMut::with_capacity(8 * 1024),
                codec: ClientCodec::new(max_frame),
                busy: false,
            }),
            wake: Notify::new(),
        });
        match stream {
            Some(stream) => tokio::spawn(write_stream(writer.clone(), stream, closed)),
            None => tokio::spawn(write_batches(writer.clone(), closed)),
        };
        writer
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one request; writes it at once when `alone` and nothing else is being written.
    ///
    /// # Errors
    /// [`Error::FrameTooLarge`] when the request is larger than the frame limit (nothing is
    /// queued), [`Error::Io`] when the socket failed.
    pub(crate) fn submit(&self, outgoing: Outgoing<'_>, alone: bool) -> Result<(), Error> {
        let mut state = self.lock();
        let State { buffer, codec, .. } = &mut *state;
        codec.encode(outgoing, buffer)?;
        if state.busy {
            return Ok(());
        }
        if alone && self.drain(&mut state)? {
            return Ok(());
        }
        state.busy = true;
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// Queues a control message for the writer task.
    ///
    /// # Errors
    /// [`Error::Unencodable`] when it cannot be encoded.
    pub(crate) fn submit_message(&self, message: ClientMessage) -> Result<(), Error> {
        let mut state = self.lock();
        let State { buffer, codec, .. } = &mut *state;
        codec.encode(message, buffer)?;
        if !state.busy {
            state.busy = true;
            drop(state);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Writes what the buffer holds without waiting: `true` once it is empty, `false` when
    /// the socket is full or only the writer task may write (TLS).
    fn drain(&self, state: &mut State) -> io::Result<bool> {
        let Some(socket) = &self.socket else {
            return Ok(state.buffer.is_empty());
        };
        while !state.buffer.is_empty() {
            match socket.try_write(&state.buffer) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => state.buffer.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// Writes each batch of frames as they accumulate, waiting for the socket when it is full.
async fn write_batches(writer: Arc<Writer>, closed: CancellationToken) {
    loop {
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = writer.wake.notified() => {}
        }
        // Let the calls already woken (say by a burst of replies) queue their frames first:
        // on a multi-threaded runtime this task otherwise runs beside them on another thread
        // and writes one or two frames per system call.
        tokio::task::yield_now().await;
        loop {
            let drained = {
                let mut state = writer.lock();
                match writer.drain(&mut state) {
                    Ok(true) => {
                        state.busy = false;
                        true
                    }
                    Ok(false) => false,
                    Err(err) => {
                        tracing::debug!(%err, "write to consumer failed");
                        closed.cancel();
                        return;
                    }
                }
            };
            if drained {
                break;
            }
            let Some(socket) = &writer.socket else {
                return;
            };
            let writable = tokio::select! {
                _ = closed.cancelled() => return,
                writable = socket.writable() => writable,
            };
            if let Err(err) = writable {
                tracing::debug!(%err, "write to consumer failed");
                closed.cancel();
                return;
            }
        }
    }
}

/// The writer task over TLS: writes each batch of frames as they accumulate, with `write_all`
/// and a flush (rustls encrypts them into as few records as it can).
async fn write_stream(
    writer: Arc<Writer>,
    mut stream: Box<dyn AsyncWrite + Send + Unpin>,
    closed: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = writer.wake.notified() => {}
        }
        loop {
            let batch = {
                let mut state = writer.lock();
                if state.buffer.is_empty() {
                    state.busy = false;
                    break;
                }
                state.buffer.split()
            };
            let write = async {
                stream.write_all(&batch).await?;
                stream.flush().await
            };
            let written = tokio::select! {
                _ = closed.cancelled() => return,
                written = write => written,
            };
            if let Err(err) = written {
                tracing::debug!(%err, "write to consumer failed");
                closed.cancel();
                return;
            }
        }
    }
}
