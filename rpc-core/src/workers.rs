//! [`Workers`]: the threads that run synchronous procedures, a fixed number at once.
//!
//! Each worker thread takes the next job off one queue as soon as it finishes the last, so a
//! busy consumer goes from task to task without waking the async runtime in between: only the
//! reply crosses back. (A `spawn_blocking` per call costs two thread wake-ups per task on the
//! critical path, which on a loaded machine idled each consumer a quarter of the time.)

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

use crate::handler::CallResult;
use crate::registry::panic_message;
use crate::{Cancellation, RpcError};

type Work = Box<dyn FnOnce() -> CallResult + Send + 'static>;

struct Job {
    work: Work,
    cancel: Cancellation,
    reply: oneshot::Sender<CallResult>,
    span: tracing::Span,
}

/// A fixed set of worker threads, started at the first synchronous call.
pub(crate) struct Workers {
    count: usize,
    queue: OnceLock<Option<mpsc::Sender<Job>>>,
}

impl Workers {
    /// `count` workers (at least one), not started yet.
    pub(crate) fn new(count: usize) -> Self {
        Self {
            count: count.max(1),
            queue: OnceLock::new(),
        }
    }

    /// How many jobs run at once.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Runs `work` on the next free worker, unless by the time one takes it the call's
    /// deadline has passed, it was cancelled, or the caller stopped waiting; a panic becomes
    /// [`RpcError::Panicked`].
    pub(crate) async fn run(&self, work: Work, cancel: Cancellation) -> CallResult {
        let Some(queue) = self.queue() else {
            return Err(RpcError::Overloaded(
                "no worker thread could be started".into(),
            ));
        };
        let (reply, answer) = oneshot::channel();
        let job = Job {
            work,
            cancel,
            reply,
            span: tracing::Span::current(),
        };
        queue.send(job).map_err(|_| RpcError::Shutdown)?;
        answer.await.unwrap_or(Err(RpcError::Shutdown))
    }

    fn queue(&self) -> Option<&mpsc::Sender<Job>> {
        self.queue.get_or_init(|| self.start()).as_ref()
    }

    fn start(&self) -> Option<mpsc::Sender<Job>> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let mut started = 0;
        for index in 0..self.count {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("rpc-worker-{index}"))
                .spawn(move || work_loop(&receiver));
            match spawned {
                Ok(_) => started += 1,
                Err(err) => tracing::error!(%err, "could not start worker thread {index}"),
            }
        }
        // With no thread to take them, queued jobs would wait forever: refuse them instead.
        (started > 0).then_some(sender)
    }
}

/// One worker: takes jobs until the registry (and with it the queue's sender) is dropped.
fn work_loop(receiver: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = {
            let receiver = receiver
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match receiver.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let _entered = job.span.enter();
        if job.reply.is_closed() {
            tracing::debug!("the caller stopped waiting before the call started: not run");
            continue;
        }
        let result = if let Err(err) = job.cancel.check() {
            tracing::debug!(%err, "not run");
            Err(err)
        } else {
            std::panic::catch_unwind(AssertUnwindSafe(job.work))
                .unwrap_or_else(|payload| Err(RpcError::Panicked(panic_message(payload.as_ref()))))
        };
        let _ = job.reply.send(result);
    }
}
