//! [`Workers`]: the threads that run synchronous procedures, a fixed number at once.
//!
//! Each worker thread takes the next job off one queue as soon as it finishes the last, so a
//! busy consumer goes from task to task without waking the async runtime in between: only the
//! reply crosses back. (A `spawn_blocking` per call costs two thread wake-ups per task on the
//! critical path, which on a loaded machine idled each consumer a quarter of the time.)
//!
//! A job of a batch procedure takes with it the jobs of the same procedure waiting behind it
//! (`batch.rs`), up to the procedure's `max`.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::batch::{BatchCall, BatchFn, BatchInput};
use crate::handler::CallResult;
use crate::metrics;
use crate::registry::panic_message;
use crate::{Cancellation, RpcError, Start};

/// What a worker runs: one call, or one call of a batch procedure.
pub(crate) enum Work {
    Single(Box<dyn FnOnce() -> CallResult + Send + 'static>),
    Batch(BatchCall),
}

struct Job {
    procedure: Arc<str>,
    work: Work,
    cancel: Cancellation,
    /// Present when its transport may take it back until it starts.
    start: Option<Start>,
    reply: oneshot::Sender<CallResult>,
    span: tracing::Span,
    queued_at: Instant,
}

impl Job {
    /// Whether it should still run, and if so marks it started; answers it when not (a caller
    /// that stopped waiting gets nothing, a cancelled, expired or withdrawn call its error).
    fn wanted(&mut self, now: Instant) -> Option<()> {
        if self.reply.is_closed() {
            let _entered = self.span.enter();
            tracing::debug!("the caller stopped waiting before the call started: not run");
            return None;
        }
        if let Err(err) = self.cancel.check_at(now.into()) {
            return self.refuse(err, "cancelled or expired");
        }
        if self.start.as_ref().is_some_and(|start| !start.begin(now)) {
            return self.refuse(RpcError::Cancelled, "withdrawn by its transport");
        }
        metrics::waited(
            &self.procedure,
            now.saturating_duration_since(self.queued_at),
        );
        Some(())
    }

    /// Answers `err` instead of running (`why`, for the trace): the job is dropped next.
    fn refuse(&mut self, err: RpcError, why: &str) -> Option<()> {
        let reply = std::mem::replace(&mut self.reply, oneshot::channel().0);
        let _entered = self.span.enter();
        tracing::debug!(%err, "{why} before it started: not run");
        let _ = reply.send(Err(err));
        None
    }
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
    /// Workers waiting for a job: a job queued while none waits needs no wake-up (a
    /// `notify_one` is a system call even with nobody to wake).
    waiting: usize,
    /// A worker was woken and has not taken the lock back yet: the jobs queued meanwhile
    /// need no wake-up of their own (that worker wakes the next one if jobs are left).
    waking: bool,
}

impl Queue {
    /// Whether a worker waits while jobs are queued and none is being woken for them.
    fn needs_wake(&self) -> bool {
        self.waiting > 0 && !self.waking && !self.jobs.is_empty()
    }

    /// Whether a waiting worker should be woken for the jobs queued; marks it being woken.
    fn wake_one(&mut self) -> bool {
        let wake = self.needs_wake();
        self.waking |= wake;
        wake
    }
}

/// The queue the workers take jobs from, and their wake-up.
pub(crate) struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes a waiting worker if jobs are queued and none is being woken already.
    pub(crate) fn wake_if_waiting(&self) {
        let wake = self.lock().wake_one();
        if wake {
            self.ready.notify_one();
        }
    }
}

/// A fixed set of worker threads, started at the first synchronous call.
pub(crate) struct Workers {
    count: usize,
    shared: OnceLock<Option<Arc<Shared>>>,
}

impl Workers {
    /// `count` workers (at least one), not started yet.
    pub(crate) fn new(count: usize) -> Self {
        Self {
            count: count.max(1),
            shared: OnceLock::new(),
        }
    }

    /// How many jobs run at once.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Runs `work` on the next free worker, unless by the time one takes it the call's
    /// deadline has passed, it was cancelled or withdrawn (`start`), or the caller stopped
    /// waiting; a panic becomes [`RpcError::Panicked`]. `now`: the caller's latest clock read,
    /// the start of the wait.
    pub(crate) async fn run(
        &self,
        procedure: Arc<str>,
        work: Work,
        cancel: Cancellation,
        start: Option<Start>,
        now: Instant,
    ) -> CallResult {
        let Some(shared) = self.shared() else {
            return Err(RpcError::Overloaded(
                "no worker thread could be started".into(),
            ));
        };
        let (reply, answer) = oneshot::channel();
        let job = Job {
            procedure,
            work,
            cancel,
            start,
            reply,
            span: tracing::Span::current(),
            queued_at: now,
        };
        let wake = {
            let mut queue = shared.lock();
            if queue.closed {
                return Err(RpcError::Shutdown);
            }
            queue.jobs.push_back(job);
            // Inside a `wake_once` poll, the wake-up waits for the poll's end.
            queue.needs_wake() && !crate::wakes::defer(shared) && queue.wake_one()
        };
        if wake {
            shared.ready.notify_one();
        }
        answer.await.unwrap_or(Err(RpcError::Shutdown))
    }

    fn shared(&self) -> Option<&Arc<Shared>> {
        self.shared.get_or_init(|| self.start()).as_ref()
    }

    fn start(&self) -> Option<Arc<Shared>> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
        });
        let mut started = 0;
        for index in 0..self.count {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("rpc-worker-{index}"))
                .spawn(move || work_loop(&shared));
            match spawned {
                Ok(_) => started += 1,
                Err(err) => tracing::error!(%err, "could not start worker thread {index}"),
            }
        }
        // With no thread to take them, queued jobs would wait forever: refuse them instead.
        (started > 0).then_some(shared)
    }
}

impl Drop for Workers {
    /// Lets the worker threads finish the jobs already queued, then end.
    fn drop(&mut self) {
        if let Some(Some(shared)) = self.shared.get() {
            shared.lock().closed = true;
            shared.ready.notify_all();
        }
    }
}

/// One worker: takes jobs until the registry is dropped and the queue is empty.
fn work_loop(shared: &Shared) {
    while let Some((job, started)) = next_job(shared) {
        let Job {
            procedure,
            work,
            start,
            reply,
            span,
            ..
        } = job;
        let _entered = span.enter();
        // Logged here, when a worker takes the call, not when it is queued.
        tracing::info!("running");
        match work {
            Work::Single(work) => {
                metrics::busy(1.0);
                let result =
                    std::panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|payload| {
                        Err(RpcError::Panicked(panic_message(payload.as_ref())))
                    });
                metrics::busy(-1.0);
                let ran = started.elapsed();
                metrics::ran(&procedure, ran);
                if let Some(start) = start {
                    start.finish(ran);
                }
                let _ = reply.send(result);
            }
            Work::Batch(call) => {
                let mut batch = vec![Waiting {
                    reply,
                    start,
                    input: call.input,
                }];
                take_batch(shared, &procedure, call.max, &mut batch);
                run_batch(&procedure, &call.run, batch);
            }
        }
    }
}

/// The next job that is still wanted, and when it was taken (one clock read for its
/// deadline, its wait and its run time), waiting for one; `None` once the queue is closed and
/// empty. The queue's lock is held only to take the job: the runtime's thread queues the next
/// ones meanwhile without waiting for it.
fn next_job(shared: &Shared) -> Option<(Job, Instant)> {
    loop {
        let mut job = take_job(shared)?;
        let now = Instant::now();
        if job.wanted(now).is_some() {
            return Some((job, now));
        }
    }
}

/// The job at the head of the queue, waiting for one; `None` once the queue is closed and
/// empty.
fn take_job(shared: &Shared) -> Option<Job> {
    let mut queue = shared.lock();
    loop {
        if let Some(job) = queue.jobs.pop_front() {
            // Jobs left behind this one and a worker waiting: pass the wake-up on.
            let wake = queue.wake_one();
            drop(queue);
            if wake {
                shared.ready.notify_one();
            }
            return Some(job);
        }
        if queue.closed {
            return None;
        }
        queue.waiting += 1;
        queue = shared.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
        queue.waiting -= 1;
        queue.waking = false;
    }
}

/// A call of a batch procedure taken for a batch: where its result goes, and its input.
struct Waiting {
    reply: oneshot::Sender<CallResult>,
    start: Option<Start>,
    input: BatchInput,
}

/// Moves waiting calls of `procedure` out of the queue into `batch`, in order, each still
/// wanted, until it holds `max`.
fn take_batch(shared: &Shared, procedure: &str, max: usize, batch: &mut Vec<Waiting>) {
    let mut queue = shared.lock();
    let mut index = 0;
    while batch.len() < max && index < queue.jobs.len() {
        let job = &queue.jobs[index];
        if !matches!(job.work, Work::Batch(_)) || *job.procedure != *procedure {
            index += 1;
            continue;
        }
        let Some(mut job) = queue.jobs.remove(index) else {
            break;
        };
        if job.wanted(Instant::now()).is_none() {
            continue;
        }
        if let Work::Batch(call) = job.work {
            batch.push(Waiting {
                reply: job.reply,
                start: job.start,
                input: call.input,
            });
        }
    }
}

/// Runs `batch` as one invocation and answers each caller with its own result; a panic
/// answers every one of them with [`RpcError::Panicked`]. Each call ran for the whole batch.
fn run_batch(procedure: &Arc<str>, run: &BatchFn, batch: Vec<Waiting>) {
    let size = batch.len();
    tracing::debug!(size, "running a batch");
    let mut replies = Vec::with_capacity(size);
    let mut inputs = Vec::with_capacity(size);
    let mut starts = Vec::new();
    for waiting in batch {
        replies.push(waiting.reply);
        inputs.push(waiting.input);
        starts.extend(waiting.start);
    }
    metrics::batch(procedure, size);
    let started = Instant::now();
    metrics::busy(1.0);
    let results = std::panic::catch_unwind(AssertUnwindSafe(|| run(inputs)));
    metrics::busy(-1.0);
    let ran = started.elapsed();
    metrics::ran(procedure, ran);
    for start in starts {
        start.finish(ran);
    }
    match results {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(payload) => {
            let err = RpcError::Panicked(panic_message(payload.as_ref()));
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}
