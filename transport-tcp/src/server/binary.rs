//! A consumer's binary connection, served by one task: it reads requests, keeps their calls
//! in flight side by side, and feeds each reply to the write buffer as soon as its call
//! finishes, flushing once nothing else is ready or every [`FLUSH_EVERY`] replies, whichever
//! comes first (a burst of requests read at once is answered in a few writes, the first of
//! them early enough for the producer to work on those replies while this side works on the
//! rest).
//!
//! One task rather than a reader, a task per call and a writer: each hop between tasks is a
//! wake-up, often on another thread, and the calls themselves already run elsewhere (on
//! blocking threads) or inline here (`async` procedures). Here a call costs no hop of our own.
//!
//! [`serve`] is the loop; a [`Session`] holds the connection's state and has one method per
//! job: waiting for the next event, the handshake, a frame, a finished call, the idle check,
//! and closing.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, SinkExt, StreamExt};
use rpc_core::{Registry, Reply, Request};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{sleep, timeout, Instant, Sleep};
use tokio_util::codec::Framed;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::context::Context;
use super::linger::linger;
use crate::error::Error;
use crate::frame::{
    BatchSize, ClientMessage, ServerCodec, ServerMessage, Welcome, PROTOCOL_VERSION,
};
use crate::security::secret::{self, Nonces, NONCE_LEN};

/// The longest wait between two checks of a connection's idleness.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Replies fed to the write buffer after which they are written even though more work is
/// ready. Holding a whole burst's replies until the last is done makes the two ends work in
/// turn: the producer waits while this side answers 64 calls, then this side waits while the
/// producer takes the 64 replies and sends the next calls, each waking the other once per
/// burst (tens of µs on a virtual machine). Writing every 16 lets the producer start on them
/// while this side runs the rest, so that both ends work at once and neither sleeps: on the
/// echo bench (64 calls in flight, current-thread runtimes, each end its own process) 2.0x to
/// 2.4x the calls/s of writing once per burst, for one more write per 16 calls
/// (docs/benchmarks.md, TCP echo).
const FLUSH_EVERY: usize = 16;

/// What woke the connection's task.
enum Event {
    Reply(Reply),
    Frame(Option<Result<ClientMessage, Error>>),
    Stop,
    Idle,
}

/// What the loop does after an event.
enum Step {
    Continue,
    /// Run this request; its token cancels it.
    Run(Request, CancellationToken),
    /// Stop reading and writing: close the connection, lingering after a protocol violation.
    Close {
        violated: bool,
    },
    /// The connection is broken or its client does not read: drop it at once.
    Abandon,
}

/// Serves one binary connection (`first`: its bytes already read) until the client closes
/// it, it idles out, breaks the protocol, or the server shuts down; the calls already read
/// are answered first.
pub(crate) async fn serve<S>(stream: S, first: &[u8], context: Arc<Context>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut session = Session::new(stream, first, &context);
    let mut calls = FuturesUnordered::new();
    let violated = loop {
        let Some(event) = session.next_event(&mut calls).await else {
            if session.broken {
                return;
            }
            break false;
        };
        let step = match event {
            Event::Frame(frame) => session.on_frame(frame).await,
            Event::Reply(reply) => session.on_reply(reply).await,
            Event::Stop => session.stop_reading(),
            Event::Idle => session.check_idle(calls.is_empty()),
        };
        match step {
            Step::Continue => {}
            Step::Run(request, cancel) => calls.push(dispatch(&context.registry, request, cancel)),
            Step::Close { violated } => break violated,
            Step::Abandon => return,
        }
    };
    session.close(violated).await;
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

/// One binary connection's state.
struct Session<'a, S> {
    context: &'a Context,
    framed: Framed<S, ServerCodec>,
    /// Whether the client may send calls: at once without a shared secret, after its proof
    /// with one.
    admitted: bool,
    /// The nonce this consumer challenged the client with, and the client's frame limit,
    /// until its proof comes.
    challenge: Option<([u8; NONCE_LEN], u32)>,
    /// When the connection was accepted: a client not admitted within the handshake timeout
    /// is closed.
    opened: Instant,
    /// Each call in flight by request id, to cancel it when its caller gives up.
    in_flight: HashMap<u64, CancellationToken>,
    /// Calls run at once at most; past that the connection is not read.
    limit: usize,
    /// False once the client closed its side, the socket failed or the server stops.
    reading: bool,
    /// Replies fed to the write buffer since the last flush.
    unflushed: usize,
    /// A flush failed: the connection is dropped at once.
    broken: bool,
    idle: Idle,
    /// The server's shutdown, registered once for the connection's life: a token's
    /// `cancelled()` made and dropped per event locks the token three times.
    shutdown: Pin<Box<WaitForCancellationFuture<'a>>>,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Session<'a, S> {
    fn new(stream: S, first: &[u8], context: &'a Context) -> Self {
        let config = &context.config;
        let mut framed = Framed::new(stream, ServerCodec::new(config.max_frame));
        framed.read_buffer_mut().extend_from_slice(first);
        Self {
            context,
            framed,
            admitted: config.secret.is_none(),
            challenge: None,
            opened: Instant::now(),
            in_flight: HashMap::new(),
            limit: config.max_in_flight.max(1),
            reading: true,
            unflushed: 0,
            broken: false,
            idle: Idle::new(config.idle_timeout),
            shutdown: Box::pin(context.shutdown.cancelled()),
        }
    }

    /// The next frame, finished call, shutdown or idle check; `None` when the client stopped
    /// sending and every call is answered.
    ///
    /// Replies are only fed to the write buffer as calls finish; they are flushed here, once
    /// nothing else is ready or [`FLUSH_EVERY`] of them wait: a burst's replies go out in a
    /// few writes, not one per reply, and the first of them early.
    async fn next_event<F>(&mut self, calls: &mut FuturesUnordered<F>) -> Option<Event>
    where
        F: Future<Output = Reply>,
    {
        if self.unflushed < FLUSH_EVERY {
            if let Some(event) = self.ready_event(calls).now_or_never() {
                return event;
            }
        }
        if self.unflushed > 0 {
            if let Step::Abandon = self.flush().await {
                self.reading = false;
                self.broken = true;
                return None;
            }
        }
        self.ready_event(calls).await
    }

    /// Writes the replies fed so far.
    async fn flush(&mut self) -> Step {
        self.unflushed = 0;
        let write_timeout = self.context.config.write_timeout;
        let flush = SinkExt::<ServerMessage>::flush(&mut self.framed);
        bounded(write_timeout, flush).await
    }

    /// Waits for a frame, a finished call, shutdown or the idle timer.
    async fn ready_event<F>(&mut self, calls: &mut FuturesUnordered<F>) -> Option<Event>
    where
        F: Future<Output = Reply>,
    {
        if !self.reading && calls.is_empty() {
            return None;
        }
        let reading = self.reading;
        let event = tokio::select! {
            // Back-pressure: at the limit, stop reading until a call finishes.
            frame = self.framed.next(), if reading && calls.len() < self.limit => Event::Frame(frame),
            Some(reply) = calls.next(), if !calls.is_empty() => Event::Reply(reply),
            _ = &mut self.shutdown, if reading => Event::Stop,
            _ = &mut self.idle.timer, if reading => Event::Idle,
            else => return None,
        };
        Some(event)
    }

    /// Stops reading: the calls already read are still answered.
    fn stop_reading(&mut self) -> Step {
        self.reading = false;
        Step::Continue
    }

    /// Handles what the client sent, or the end of its stream.
    async fn on_frame(&mut self, frame: Option<Result<ClientMessage, Error>>) -> Step {
        let message = match frame {
            None => return self.stop_reading(),
            Some(Err(Error::Io(err))) => {
                tracing::debug!(%err, "connection failed");
                return self.stop_reading();
            }
            Some(Err(err)) => {
                tracing::warn!(%err, "protocol violation: closing the connection");
                return self.refuse(err).await;
            }
            Some(Ok(message)) => message,
        };
        self.idle.active = true;
        match message {
            ClientMessage::Hello { version, max_frame } => self.handshake(version, max_frame).await,
            ClientMessage::Proof { nonce, proof } => self.check_proof(nonce, &proof).await,
            _ if !self.admitted => {
                tracing::warn!("refused: a client sent calls without authenticating");
                self.refuse(Error::Unauthenticated).await
            }
            ClientMessage::Request(request) => {
                let cancel = CancellationToken::new();
                self.in_flight.insert(request.id, cancel.clone());
                Step::Run(request, cancel)
            }
            ClientMessage::Cancel { id } => {
                // Takes effect at once: a queued call is never handed to a worker, a running
                // one sees its `Cancellation` fire. Its reply is not sent.
                if let Some(cancel) = self.in_flight.remove(&id) {
                    tracing::debug!(id, "cancelled by the caller");
                    cancel.cancel();
                }
                Step::Continue
            }
            ClientMessage::Ping => self.send(ServerMessage::Pong).await,
        }
    }

    /// Answers the producer's `Hello`: `Welcome` with this consumer's capacity, a
    /// `Challenge` when it has a shared secret, or an error for another protocol version.
    async fn handshake(&mut self, version: u32, max_frame: u32) -> Step {
        if version != PROTOCOL_VERSION {
            let refused = Error::Version {
                theirs: version,
                ours: PROTOCOL_VERSION,
            };
            return self.refuse(refused).await;
        }
        if self.context.config.secret.is_some() && !self.admitted {
            let nonce = match secret::nonce() {
                Ok(nonce) => nonce,
                Err(err) => return self.refuse(err.into()).await,
            };
            self.challenge = Some((nonce, max_frame));
            return self.send(ServerMessage::Challenge { nonce }).await;
        }
        self.welcome(max_frame, Vec::new()).await
    }

    /// Checks the producer's answer to the challenge: its `Welcome` (with this consumer's own
    /// proof) when it knows the secret; otherwise one log line and an error, and the
    /// connection is closed before any call is read.
    async fn check_proof(&mut self, producer: [u8; NONCE_LEN], proof: &[u8]) -> Step {
        let (Some((consumer, max_frame)), Some(secret)) =
            (self.challenge.take(), self.context.config.secret.as_ref())
        else {
            tracing::warn!("refused: a proof nobody asked for");
            return self.refuse(Error::Unauthenticated).await;
        };
        let nonces = Nonces { consumer, producer };
        if secret.verify_producer(&nonces, proof) {
            self.admitted = true;
            tracing::debug!("producer authenticated");
            let proof = secret.consumer_proof(&nonces);
            return self.welcome(max_frame, proof).await;
        }
        let refused = match proof.is_empty() {
            true => Error::NoSecret,
            false => Error::WrongSecret,
        };
        tracing::warn!(reason = %refused, "producer refused");
        self.refuse(refused).await
    }

    /// Sends the `Welcome`: the producer may now send calls.
    async fn welcome(&mut self, max_frame: u32, proof: Vec<u8>) -> Step {
        // Replies the producer would refuse become protocol errors here instead.
        self.framed.codec_mut().limit_encoding(max_frame as usize);
        let welcome = Welcome {
            version: PROTOCOL_VERSION,
            workers: u32::try_from(self.context.registry.workers()).unwrap_or(u32::MAX),
            max_frame: u32::try_from(self.context.config.max_frame).unwrap_or(u32::MAX),
            batches: batch_sizes(&self.context.registry),
            proof,
        };
        self.send(ServerMessage::Welcome(welcome)).await
    }

    /// Feeds `reply` to the write buffer (flushed by [`Session::next_event`] once nothing else
    /// is ready). A call no longer in flight was cancelled: its caller forgot it, so it gets
    /// no reply.
    async fn on_reply(&mut self, reply: Reply) -> Step {
        self.idle.active = true;
        if self.in_flight.remove(&reply.id).is_none() {
            return Step::Continue;
        }
        self.unflushed += 1;
        let write_timeout = self.context.config.write_timeout;
        // Waits only when the buffer is past its limit and the socket is full.
        let feed = self.framed.feed(ServerMessage::Reply(reply));
        if let Step::Abandon = bounded(write_timeout, feed).await {
            return Step::Abandon;
        }
        Step::Continue
    }

    /// The idle timer fired: closes a connection quiet for the idle timeout, or one not
    /// authenticated within the handshake timeout.
    fn check_idle(&mut self, no_calls: bool) -> Step {
        let handshake_timeout = self.context.config.handshake_timeout;
        if !self.admitted && self.opened.elapsed() >= handshake_timeout {
            tracing::warn!("not authenticated within {handshake_timeout:?}: closed");
            return Step::Close { violated: false };
        }
        match self.idle.expired(no_calls) {
            true => {
                tracing::debug!("idle connection closed");
                Step::Close { violated: false }
            }
            false => Step::Continue,
        }
    }

    /// Tells the client why the connection closes (it broke the protocol), then closes it.
    async fn refuse(&mut self, err: Error) -> Step {
        let _ = self.send(ServerMessage::Error(err.into())).await;
        Step::Close { violated: true }
    }

    /// Writes one message and flushes.
    async fn send(&mut self, message: ServerMessage) -> Step {
        bounded(self.context.config.write_timeout, self.framed.send(message)).await
    }

    /// Closes the write side; after a protocol violation, reads what the client still
    /// sends for a moment so that the error is not destroyed by a reset.
    async fn close(mut self, violated: bool) {
        let _ = timeout(
            self.context.config.write_timeout,
            SinkExt::<ServerMessage>::close(&mut self.framed),
        )
        .await;
        if violated {
            linger(self.framed.get_mut()).await;
        }
    }
}

/// The registry's batch procedures with their largest batch, for the `Welcome`.
fn batch_sizes(registry: &Registry) -> Vec<BatchSize> {
    registry
        .procedure_names()
        .into_iter()
        .filter_map(|procedure| {
            let max = registry.batch_size(&procedure);
            let max = u32::try_from(max).unwrap_or(u32::MAX);
            (max > 1).then_some(BatchSize { procedure, max })
        })
        .collect()
}

/// Runs `write` within `limit`, and says what it came to: go on, or drop the connection.
///
/// The timer is set only if the write cannot finish at once: a reply fed to a buffer with
/// room, or a flush the socket takes whole, costs no clock read (20-30 ns each on this
/// project's virtual machines, and a call already needs a few).
async fn bounded<F>(limit: Duration, write: F) -> Step
where
    F: Future<Output = Result<(), Error>>,
{
    let mut write = std::pin::pin!(write);
    let written = match write.as_mut().now_or_never() {
        Some(done) => Ok(done),
        None => timeout(limit, write).await,
    };
    match written {
        Ok(Ok(())) => Step::Continue,
        Ok(Err(err)) => {
            tracing::debug!(%err, "write failed: closing the connection");
            Step::Abandon
        }
        Err(_) => {
            tracing::warn!("client not reading its replies: closing the connection");
            Step::Abandon
        }
    }
}

/// The connection's idleness: checked every second rather than with one long timer, so the
/// tokio driver always has a timer due soon and the deadline each call registers never has to
/// wake it early (an eventfd write and an extra epoll_wait per call otherwise). Activity is a
/// flag, not a clock read per frame.
struct Idle {
    timer: Pin<Box<Sleep>>,
    check_every: Duration,
    timeout: Duration,
    /// Set by every frame and reply since the last check.
    active: bool,
    quiet_for: Duration,
}

impl Idle {
    fn new(timeout: Duration) -> Self {
        let check_every = timeout.min(IDLE_CHECK);
        Self {
            timer: Box::pin(sleep(check_every)),
            check_every,
            timeout,
            active: false,
            quiet_for: Duration::ZERO,
        }
    }

    /// Called when the timer fires: whether the connection has now been quiet, with no call
    /// running, for the whole timeout; if not, the timer is set again.
    fn expired(&mut self, no_calls: bool) -> bool {
        self.quiet_for = match std::mem::take(&mut self.active) || !no_calls {
            true => Duration::ZERO,
            false => self.quiet_for + self.check_every,
        };
        if self.quiet_for >= self.timeout {
            return true;
        }
        self.timer.as_mut().reset(Instant::now() + self.check_every);
        false
    }
}
