//! The in-memory transport: both halves in one process, for tests and for embedding.
//!
//! Calls travel over a bounded channel to a server task that dispatches them to a
//! [`Registry`]; nothing is serialized beyond the arguments themselves. A caller that drops
//! its call cancels it on the server (the registry never runs it if it has not started).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::handler::CallResult;
use crate::{Call, Registry, RpcError, ServerTask, Transport};

/// How many calls may wait in the channel before callers wait for room.
pub const CHANNEL_CAPACITY: usize = 1024;

struct Envelope {
    call: Call,
    reply: oneshot::Sender<CallResult>,
    /// Fired by the caller's side when it drops the call.
    cancel: CancellationToken,
}

/// The client half: a [`Transport`] whose calls go to the server [`spawn`] started.
#[derive(Debug, Clone)]
pub struct MemoryTransport {
    sender: mpsc::Sender<Envelope>,
}

/// The server half, before [`serve`] takes it.
#[derive(Debug)]
struct MemoryListener {
    receiver: mpsc::Receiver<Envelope>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("call", &self.call)
            .finish()
    }
}

/// A connected pair of halves.
fn pair() -> (MemoryTransport, MemoryListener) {
    let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
    (MemoryTransport { sender }, MemoryListener { receiver })
}

/// Serves `registry` to the calls arriving on `listener` until `shutdown` fires; then answers
/// calls still queued with [`RpcError::Shutdown`], waits for the calls already started to be
/// answered, and returns.
async fn serve(listener: MemoryListener, registry: Arc<Registry>, shutdown: CancellationToken) {
    let mut receiver = listener.receiver;
    let tracker = TaskTracker::new();
    let mut next_id: u64 = 0;
    // Registered once, not once per call (a token's `cancelled()` locks it on each making,
    // polling and dropping).
    let stopped = shutdown.cancelled();
    tokio::pin!(stopped);
    loop {
        let envelope = tokio::select! {
            _ = &mut stopped => break,
            envelope = receiver.recv() => match envelope {
                Some(envelope) => envelope,
                None => break,
            },
        };
        next_id += 1;
        let registry = registry.clone();
        tracker.spawn(async move {
            let Envelope {
                call,
                reply,
                cancel,
            } = envelope;
            let result = registry.dispatch(next_id, call, cancel).await;
            let _ = reply.send(result);
        });
    }
    receiver.close();
    while let Some(envelope) = receiver.recv().await {
        let _ = envelope.reply.send(Err(RpcError::Shutdown));
    }
    tracker.close();
    tracker.wait().await;
}

/// A running in-memory server; dropping it or calling `shutdown` stops it.
pub type MemoryServer = ServerTask;

/// Starts a server for `registry` on the current runtime and returns a transport to it.
pub fn spawn(registry: Registry) -> (MemoryTransport, MemoryServer) {
    let (transport, listener) = pair();
    let server = ServerTask::spawn(|shutdown| serve(listener, Arc::new(registry), shutdown));
    (transport, server)
}

#[async_trait]
impl Transport for MemoryTransport {
    async fn call(&self, call: Call) -> Result<Vec<u8>, RpcError> {
        let (reply, answer) = oneshot::channel();
        let cancel = CancellationToken::new();
        // Dropping this call (or finishing it) fires `cancel` at once, on the caller's side:
        // the server learns it without a hop.
        let _cancel_on_drop = cancel.clone().drop_guard();
        self.sender
            .send(Envelope {
                call,
                reply,
                cancel,
            })
            .await
            .map_err(|_| RpcError::Shutdown)?;
        answer.await.map_err(|_| RpcError::Shutdown)?
    }
}
