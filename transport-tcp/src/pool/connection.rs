//! A producer's connection to one consumer: the handshake, then many calls in flight, each
//! matched to its reply by id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use rpc_core::{Call, RpcError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_util::codec::{Framed, FramedRead};
use tokio_util::sync::CancellationToken;

use super::writer::{WriteSide, Writer};
use crate::config::TcpTransportConfig;
use crate::error::Error;
use crate::frame::{
    ClientCodec, ClientMessage, Outgoing, ServerMessage, Welcome, PROTOCOL_VERSION,
};
use crate::security::secret::{self, Nonces};

type Waiter = oneshot::Sender<Result<Vec<u8>, RpcError>>;

/// The calls waiting for a reply by id. The ids are this producer's own, so the map uses a
/// fast hasher: SipHash, std's default, guards against keys an attacker picks, and cost
/// 2-3% of the producer's CPU per call on the echo bench.
type Waiters = HashMap<u64, Waiter, foldhash::fast::RandomState>;

/// The calls waiting for a reply; `None` once the connection is closed, so that no call
/// can wait on a connection nobody reads any more.
#[derive(Default)]
struct Pending(Mutex<Option<Waiters>>);

impl Pending {
    fn lock(&self) -> MutexGuard<'_, Option<Waiters>> {
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
    /// Connects to `addr` (over TLS when the config has it), says hello, proves it knows
    /// the shared secret if the consumer asks, and reads the consumer's capacity.
    ///
    /// # Errors
    /// [`Error::Io`] when the consumer cannot be reached, [`Error::Tls`] when the TLS
    /// handshake fails, [`Error::Refused`] when it refuses the handshake (another protocol
    /// version, a wrong secret), another [`Error`] when it answers with something else or
    /// does not authenticate as this pool requires.
    pub(crate) async fn open(addr: &str, config: &TcpTransportConfig) -> Result<Arc<Self>, Error> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let max_frame = config.max_frame;
        match &config.tls {
            None => {
                let mut framed = Framed::new(stream, ClientCodec::new(max_frame));
                let welcome = handshake(&mut framed, config).await?;
                let parts = framed.into_parts();
                let (read, write) = parts.io.into_split();
                let write = WriteSide::Socket(write);
                Ok(Self::start(read, parts.read_buf, write, welcome, max_frame))
            }
            Some(tls) => {
                let stream = tls
                    .connect(addr, stream)
                    .await
                    .map_err(|e| Error::Io(e).in_tls())?;
                let mut framed = Framed::new(stream, ClientCodec::new(max_frame));
                let welcome = handshake(&mut framed, config)
                    .await
                    .map_err(Error::in_tls)?;
                let parts = framed.into_parts();
                let (read, write) = tokio::io::split(parts.io);
                let write = WriteSide::Stream(Box::new(write));
                Ok(Self::start(read, parts.read_buf, write, welcome, max_frame))
            }
        }
    }

    /// The connection after its handshake: its writer, and a task reading replies (`read_buf`:
    /// bytes already read after the `Welcome`).
    fn start<R>(
        read: R,
        read_buf: BytesMut,
        write: WriteSide,
        welcome: Welcome,
        max_frame: usize,
    ) -> Arc<Self>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let closed = CancellationToken::new();
        // Requests are refused here, before they are sent, when the consumer would refuse them.
        let request_limit = max_frame.min(welcome.max_frame as usize);
        let writer = Writer::start(write, request_limit, closed.clone());
        let connection = Arc::new(Self {
            writer,
            pending: Arc::new(Pending(Mutex::new(Some(Waiters::default())))),
            closed,
            next_id: AtomicU64::new(1),
            welcome,
            heard: Arc::new(AtomicBool::new(false)),
        });
        let mut frames = FramedRead::new(read, ClientCodec::new(max_frame));
        *frames.read_buffer_mut() = read_buf;
        tokio::spawn(read_replies(
            frames,
            connection.pending.clone(),
            connection.closed.clone(),
            connection.heard.clone(),
        ));
        connection
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

/// The producer's side of the handshake on a new connection: `Hello`, then the proof of the
/// shared secret if the consumer challenges, then the consumer's `Welcome` (checking its own
/// proof when this pool has a secret).
async fn handshake<S>(
    framed: &mut Framed<S, ClientCodec>,
    config: &TcpTransportConfig,
) -> Result<Welcome, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hello = ClientMessage::Hello {
        version: PROTOCOL_VERSION,
        max_frame: u32::try_from(config.max_frame).unwrap_or(u32::MAX),
    };
    framed.send(hello).await?;
    let consumer = match next_message(framed).await? {
        ServerMessage::Welcome(welcome) => match config.secret {
            Some(_) => return Err(Error::ConsumerUnauthenticated),
            None => return Ok(welcome),
        },
        ServerMessage::Challenge { nonce } => nonce,
        ServerMessage::Reply(_) | ServerMessage::Pong | ServerMessage::Error(_) => {
            return Err(Error::NoWelcome)
        }
    };
    let nonces = Nonces {
        consumer,
        producer: secret::nonce()?,
    };
    // Without a secret, an empty proof: the consumer then logs why it refuses.
    let proof = config
        .secret
        .as_ref()
        .map(|secret| secret.producer_proof(&nonces))
        .unwrap_or_default();
    let producer = nonces.producer;
    framed
        .send(ClientMessage::Proof {
            nonce: producer,
            proof,
        })
        .await?;
    let Some(secret) = &config.secret else {
        return Err(Error::SecretRequired);
    };
    let welcome = match next_message(framed).await? {
        ServerMessage::Welcome(welcome) => welcome,
        _ => return Err(Error::NoWelcome),
    };
    match secret.verify_consumer(&nonces, &welcome.proof) {
        true => Ok(welcome),
        false => Err(Error::WrongConsumerSecret),
    }
}

/// The consumer's next message in the handshake; its `Error` as [`Error::Refused`].
async fn next_message<S>(framed: &mut Framed<S, ClientCodec>) -> Result<ServerMessage, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match framed.next().await {
        Some(Ok(ServerMessage::Error(err))) => Err(Error::Refused(err)),
        Some(Ok(message)) => Ok(message),
        Some(Err(err)) => Err(err),
        None => Err(Error::ClosedInHandshake),
    }
}

/// Hands each reply to its waiting call, until the connection closes; then fails every call
/// still waiting (they are retried elsewhere).
async fn read_replies<R: AsyncRead + Unpin>(
    mut frames: FramedRead<R, ClientCodec>,
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
            Some(Ok(
                ServerMessage::Welcome(_) | ServerMessage::Pong | ServerMessage::Challenge { .. },
            )) => {}
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
