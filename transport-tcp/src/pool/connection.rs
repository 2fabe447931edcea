//! A producer's connection to one consumer: the handshake, then many calls in flight, each
//! matched to its reply by id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{SinkExt, StreamExt};
use rpc_core::{Call, RpcError};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use super::writer::Writer;
use crate::error::Error;
use crate::frame::{
    ClientCodec, ClientMessage, Outgoing, ServerMessage, Welcome, PROTOCOL_VERSION,
};

type Waiter = oneshot::Sender<Result<Vec<u8>, RpcError>>;

/// The calls waiting for a reply; `None` once the connection is closed, so that no call
/// can wait on a connection nobody reads any more.
#[derive(Default)]
struct Pending(Mutex<Option<HashMap<u64, Waiter>>>);

impl Pending {
    fn lock(&self) -> MutexGuard<'_, Option<HashMap<u64, Waiter>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, id: u64) -> Option<Waiter> {
        self.lock().as_mut().and_then(|calls| calls.remove(&id))
    }

    /// Closes the table: every waiting call learns that its connection broke.
    fn close(&self) {
        self.lock().take();
    }
}

/// What became of a call sent on a connection.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The consumer answered, or the deadline passed: final.
    Done(Result<Vec<u8>, RpcError>),
    /// The connection broke before the reply: the call may be sent again elsewhere.
    Lost(String),
}

/// One connection to a consumer, shared by every call sent on it.
#[derive(Debug)]
pub(crate) struct Connection {
    writer: Arc<Writer>,
    pending: Arc<Pending>,
    closed: CancellationToken,
    next_id: AtomicU64,
    welcome: Welcome,
    /// Set by the reader on every frame; taken by [`Connection::heard_since`].
    heard: Arc<AtomicBool>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waiting = self.lock().as_ref().map(HashMap::len);
        f.debug_struct("Pending")
            .field("waiting", &waiting)
            .finish()
    }
}

impl Connection {
    /// Connects to `addr`, says hello and reads the consumer's capacity.
    ///
    /// # Errors
    /// [`Error::Io`] when the consumer cannot be reached, [`Error::Refused`] when it refuses
    /// the handshake, another [`Error`] when it answers with something else.
    pub(crate) async fn open(addr: &str, max_frame: usize) -> Result<Arc<Self>, Error> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let mut frames = FramedRead::new(read, ClientCodec::new(max_frame));
        let mut sink = FramedWrite::new(write, ClientCodec::new(max_frame));
        let hello = ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            max_frame: u32::try_from(max_frame).unwrap_or(u32::MAX),
        };
        sink.send(hello).await?;
        let welcome = match frames.next().await {
            Some(Ok(ServerMessage::Welcome(welcome))) => welcome,
            Some(Ok(ServerMessage::Error(err))) => return Err(Error::Refused(err)),
            Some(Err(err)) => return Err(err),
            Some(Ok(ServerMessage::Reply(_) | ServerMessage::Pong)) => {
                return Err(Error::NoWelcome)
            }
            None => return Err(Error::ClosedInHandshake),
        };
        let closed = CancellationToken::new();
        // Requests are refused here, before they are sent, when the consumer would refuse them.
        let request_limit = max_frame.min(welcome.max_frame as usize);
        let writer = Writer::start(sink.into_inner(), request_limit, closed.clone());
        let connection = Arc::new(Self {
            writer,
            pending: Arc::new(Pending(Mutex::new(Some(HashMap::new())))),
            closed,
            next_id: AtomicU64::new(1),
            welcome,
            heard: Arc::new(AtomicBool::new(false)),
        });
        tokio::spawn(read_replies(
            frames,
            connection.pending.clone(),
            connection.closed.clone(),
            connection.heard.clone(),
        ));
        Ok(connection)
    }

    /// The consumer's capacity, as it said in the handshake (at least 1).
    pub(crate) fn workers(&self) -> usize {
        (self.welcome.workers as usize).max(1)
    }

    /// The consumer's batch procedures and the most calls each of their batches takes, as it
    /// said in the handshake.
    pub(crate) fn batch_sizes(&self) -> HashMap<String, usize> {
        let batches = self.welcome.batches.iter();
        batches
            .map(|b| (b.procedure.clone(), (b.max as usize).max(1)))
            .collect()
    }

    /// Resolves when the connection is closed, from either side.
    pub(crate) async fn closed(&self) {
        self.closed.cancelled().await;
    }

    /// Whether the consumer sent anything since the last time this was asked.
    pub(crate) fn heard_since(&self) -> bool {
        self.heard.swap(false, Ordering::Relaxed)
    }

    /// Asks the consumer for a pong, which [`Connection::heard_since`] then notices.
    pub(crate) fn ping(&self) {
        if let Err(err) = self.writer.submit_message(ClientMessage::Ping) {
            tracing::debug!(%err, "ping not sent");
            self.closed.cancel();
        }
    }

    /// Closes the connection: the calls waiting on it are sent again elsewhere.
    pub(crate) fn close(&self) {
        self.closed.cancel();
    }

    /// Whether the connection is closed (the pool may not have noticed yet).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// A request id unused on this connection.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `call` as request `id` and waits for its reply.
    ///
    /// No timer: the caller's deadline drops this future. A call dropped after it was sent
    /// forgets its pending entry and sends the consumer a `Cancel`; a late reply is discarded.
    pub(crate) async fn call(&self, id: u64, call: &Call) -> Outcome {
        let outgoing = Outgoing { id, call };
        let (waiter, reply) = oneshot::channel();
        let alone = match self.pending.lock().as_mut() {
            Some(calls) => {
                calls.insert(id, waiter);
                calls.len() == 1
            }
            None => return Outcome::Lost("connection closed".into()),
        };
        let mut entry = Entry {
            connection: self,
            id,
            sent: false,
        };
        match self.writer.submit(outgoing, alone) {
            Ok(()) => entry.sent = true,
            Err(Error::Io(err)) => {
                self.closed.cancel();
                return Outcome::Lost(err.to_string());
            }
            Err(err) => return Outcome::Done(Err(err.into())),
        }
        match reply.await {
            Ok(result) => Outcome::Done(result),
            Err(_) => Outcome::Lost("connection closed before the reply".into()),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// A call's pending entry, removed when the call is answered or dropped; a call dropped
/// while the consumer holds it is cancelled there.
struct Entry<'a> {
    connection: &'a Connection,
    id: u64,
    sent: bool,
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        // Still pending: nobody answered it and the connection is open, so the caller gave up.
        let abandoned = self.connection.pending.take(self.id).is_some();
        if abandoned && self.sent {
            let cancel = ClientMessage::Cancel { id: self.id };
            if let Err(err) = self.connection.writer.submit_message(cancel) {
                tracing::debug!(%err, id = self.id, "cancel not sent");
            }
        }
    }
}

/// Hands each reply to its waiting call, until the connection closes; then fails every call
/// still waiting (they are retried elsewhere).
async fn read_replies(
    mut frames: FramedRead<OwnedReadHalf, ClientCodec>,
    pending: Arc<Pending>,
    closed: CancellationToken,
    heard: Arc<AtomicBool>,
) {
    loop {
        let frame = tokio::select! {
            _ = closed.cancelled() => break,
            frame = frames.next() => frame,
        };
        heard.store(true, Ordering::Relaxed);
        match frame {
            Some(Ok(ServerMessage::Reply(reply))) => match pending.take(reply.id) {
                Some(waiter) => {
                    let _ = waiter.send(reply.into_result());
                }
                None => tracing::debug!(id = reply.id, "late reply discarded"),
            },
            Some(Ok(ServerMessage::Welcome(_) | ServerMessage::Pong)) => {}
            Some(Ok(ServerMessage::Error(err))) => {
                tracing::warn!(%err, "consumer closed the connection");
                break;
            }
            Some(Err(err)) => {
                tracing::warn!(%err, "connection to consumer failed");
                break;
            }
            None => break,
        }
    }
    closed.cancel();
    pending.close();
}
