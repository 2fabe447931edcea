//! A producer's connection to one consumer: the handshake, then many calls in flight, each
//! matched to its reply by id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rpc_core::{Call, RpcError};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout_at, Instant};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::frame::{
    too_large, ClientCodec, ClientMessage, Outgoing, ServerMessage, Welcome, PROTOCOL_VERSION,
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
    outbox: mpsc::UnboundedSender<Outgoing>,
    pending: Arc<Pending>,
    closed: CancellationToken,
    next_id: AtomicU64,
    welcome: Welcome,
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
    /// [`RpcError::Io`] when the consumer cannot be reached, [`RpcError::Protocol`] when it
    /// answers the handshake with something else.
    pub(crate) async fn open(addr: &str, max_frame: usize) -> Result<Arc<Self>, RpcError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let mut frames = FramedRead::new(read, ClientCodec::new(max_frame));
        let mut sink = FramedWrite::new(write, ClientCodec::new(max_frame));
        let hello = ClientMessage::Hello {
            version: PROTOCOL_VERSION,
        };
        sink.send(hello).await?;
        let welcome = match frames.next().await {
            Some(Ok(ServerMessage::Welcome(welcome))) => welcome,
            Some(Ok(ServerMessage::Error(err))) | Some(Err(err)) => return Err(err),
            Some(Ok(ServerMessage::Reply(_))) => {
                return Err(RpcError::Protocol("a reply before the handshake".into()))
            }
            None => return Err(RpcError::Io("closed during the handshake".into())),
        };
        let (outbox, outgoing) = mpsc::unbounded_channel();
        let connection = Arc::new(Self {
            outbox,
            pending: Arc::new(Pending(Mutex::new(Some(HashMap::new())))),
            closed: CancellationToken::new(),
            next_id: AtomicU64::new(1),
            welcome,
        });
        tokio::spawn(write_requests(sink, outgoing, connection.closed.clone()));
        tokio::spawn(read_replies(
            frames,
            connection.pending.clone(),
            connection.closed.clone(),
        ));
        Ok(connection)
    }

    /// The consumer's capacity, as it said in the handshake (at least 1).
    pub(crate) fn workers(&self) -> usize {
        (self.welcome.workers as usize).max(1)
    }

    /// Resolves when the connection is closed, from either side.
    pub(crate) async fn closed(&self) {
        self.closed.cancelled().await;
    }

    /// Whether the connection is closed (the pool may not have noticed yet).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// A request id unused on this connection.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `call` as request `id` with `timeout` left, and waits for its reply until
    /// `deadline`.
    ///
    /// A call whose future is dropped forgets its pending entry; its late reply is discarded.
    pub(crate) async fn call(
        &self,
        id: u64,
        call: &Arc<Call>,
        timeout: Duration,
        deadline: Instant,
    ) -> Outcome {
        let outgoing = Outgoing {
            id,
            call: call.clone(),
            timeout,
        };
        let limit = self.welcome.max_frame as usize;
        match outgoing.body_len() {
            Ok(len) if len > limit => return Outcome::Done(Err(too_large(len, limit))),
            Ok(_) => {}
            Err(err) => return Outcome::Done(Err(err)),
        }
        let (waiter, reply) = oneshot::channel();
        match self.pending.lock().as_mut() {
            Some(calls) => calls.insert(id, waiter),
            None => return Outcome::Lost("connection closed".into()),
        };
        let _entry = Entry {
            pending: &self.pending,
            id,
        };
        if self.outbox.send(outgoing).is_err() {
            return Outcome::Lost("connection closed".into());
        }
        match timeout_at(deadline, reply).await {
            Ok(Ok(result)) => Outcome::Done(result),
            Ok(Err(_)) => Outcome::Lost("connection closed before the reply".into()),
            Err(_) => Outcome::Done(Err(RpcError::DeadlineExceeded)),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// A call's pending entry, removed when the call is answered, times out or is dropped.
struct Entry<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        self.pending.take(self.id);
    }
}

/// Writes requests as they come, one flush per batch, until the connection closes.
async fn write_requests(
    mut sink: FramedWrite<OwnedWriteHalf, ClientCodec>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    closed: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = closed.cancelled() => break,
            first = outgoing.recv() => match first {
                Some(first) => first,
                None => break,
            },
        };
        let batch = async {
            sink.feed(first).await?;
            while let Ok(next) = outgoing.try_recv() {
                sink.feed(next).await?;
            }
            SinkExt::<Outgoing>::flush(&mut sink).await
        };
        let written = tokio::select! {
            _ = closed.cancelled() => break,
            written = batch => written,
        };
        if let Err(err) = written {
            tracing::debug!(%err, "write to consumer failed");
            break;
        }
    }
    closed.cancel();
    let _ = SinkExt::<Outgoing>::close(&mut sink).await;
}

/// Hands each reply to its waiting call, until the connection closes; then fails every call
/// still waiting (they are retried elsewhere).
async fn read_replies(
    mut frames: FramedRead<OwnedReadHalf, ClientCodec>,
    pending: Arc<Pending>,
    closed: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            _ = closed.cancelled() => break,
            frame = frames.next() => frame,
        };
        match frame {
            Some(Ok(ServerMessage::Reply(reply))) => match pending.take(reply.id) {
                Some(waiter) => {
                    let _ = waiter.send(reply.into_result());
                }
                None => tracing::debug!(id = reply.id, "late reply discarded"),
            },
            Some(Ok(ServerMessage::Welcome(_))) => {}
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
