//! [`Registry`]: the handlers a consumer serves, and the execution of calls to them.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tokio::time::timeout_at;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::handler::{CallResult, Invocation};
use crate::metrics;
use crate::workers::{Work, Workers};
use crate::{Call, Cancellation, Handler, RpcError, Start};

/// The default number of synchronous procedures a consumer runs at once: one, as in the seed.
pub const DEFAULT_WORKERS: usize = 1;

/// The handlers a consumer serves, and how many of their synchronous procedures run at once.
///
/// A transport's server half takes an `Arc<Registry>` and calls [`Registry::dispatch`] for each
/// request it receives.
///
/// ```
/// use rpc_core::{Call, Encoding, Registry};
///
/// struct Greeter;
///
/// #[rpc_core::handler]
/// impl Greeter {
///     /// Greets `name`.
///     pub fn hello(name: String) -> String {
///         format!("hello, {name}")
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut registry = Registry::new().with_workers(2);
/// registry.register(Greeter);
/// assert_eq!(registry.procedure_names(), ["greeter.hello"]);
/// let call = Call::new("greeter.hello", Encoding::Text, b"world".to_vec());
/// let cancel = tokio_util::sync::CancellationToken::new(); // fired if the caller gives up
/// assert_eq!(registry.dispatch("doc", call, cancel).await.unwrap(), b"hello, world");
/// # }
/// ```
pub struct Registry {
    handlers: BTreeMap<String, Arc<dyn Handler>>,
    workers: Workers,
    batch_limit: Option<usize>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("procedures", &self.procedure_names())
            .field("workers", &self.workers.count())
            .field("batch_limit", &self.batch_limit)
            .finish()
    }
}

impl Registry {
    /// An empty registry with [`DEFAULT_WORKERS`] workers.
    pub fn new() -> Self {
        Self {
            handlers: BTreeMap::new(),
            workers: Workers::new(DEFAULT_WORKERS),
            batch_limit: None,
        }
    }

    /// The same registry running at most `workers` synchronous procedures at once (at least 1).
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = Workers::new(workers);
        self
    }

    /// The same registry running at most `limit` calls (at least 1) in one invocation of any
    /// batch procedure, below the procedure's own `#[batch(max = N)]`: a limit of 1 runs every
    /// call alone, as if no procedure batched. Without it each procedure's `max` applies.
    ///
    /// ```
    /// use rpc_core::Registry;
    ///
    /// struct Doubler;
    ///
    /// #[rpc_core::handler]
    /// impl Doubler {
    ///     /// Doubles each `n`.
    ///     #[batch(max = 8, param = "n")]
    ///     pub fn double(&self, numbers: Vec<i64>) -> Vec<Result<i64, String>> {
    ///         numbers.into_iter().map(|n| Ok(2 * n)).collect()
    ///     }
    /// }
    ///
    /// let mut batched = Registry::new();
    /// batched.register(Doubler);
    /// assert_eq!(batched.batch_size("doubler.double"), 8);
    /// let mut alone = Registry::new().with_batch_limit(1);
    /// alone.register(Doubler);
    /// assert_eq!(alone.batch_size("doubler.double"), 1);
    /// ```
    pub fn with_batch_limit(mut self, limit: usize) -> Self {
        self.batch_limit = Some(limit.max(1));
        self
    }

    /// How many synchronous procedures run at once: the consumer's capacity.
    pub fn workers(&self) -> usize {
        self.workers.count()
    }

    /// Registers every procedure of `handler` under its own name.
    pub fn register<H: Handler>(&mut self, handler: H) -> &mut Self {
        let name = handler.name().to_string();
        self.register_as(name, handler)
    }

    /// Registers every procedure of `handler` under another handler name, so that one type can
    /// be served twice, or tests sharing a broker use names of their own.
    pub fn register_as<H: Handler>(&mut self, name: impl Into<String>, handler: H) -> &mut Self {
        self.handlers.insert(name.into(), Arc::new(handler));
        self
    }

    /// How many calls `procedure` (`handler.method`) takes at once: its `#[batch(max = N)]`
    /// within the registry's [`Registry::with_batch_limit`], or 1 (also for a procedure not
    /// served here).
    pub fn batch_size(&self, procedure: &str) -> usize {
        procedure
            .rsplit_once('.')
            .and_then(|(handler, method)| {
                let handler = self.handlers.get(handler)?;
                handler.procedures().iter().find(|p| p.method == method)
            })
            .map_or(1, |p| self.limit_batch(p.batch))
    }

    /// A procedure's own batch size within the registry's limit.
    fn limit_batch(&self, max: usize) -> usize {
        self.batch_limit.map_or(max, |limit| max.min(limit)).max(1)
    }

    /// Every procedure served, as `handler.method`, sorted.
    pub fn procedure_names(&self) -> Vec<String> {
        self.handlers
            .iter()
            .flat_map(|(name, handler)| {
                handler
                    .procedures()
                    .iter()
                    .map(move |p| format!("{name}.{}", p.method))
            })
            .collect()
    }

    /// Runs `call` and returns its encoded result. `id` only names the call in traces.
    ///
    /// The call's [`crate::Deadline`] is enforced here, on the consumer's side. Arguments are
    /// decoded first; a synchronous procedure then waits for one of the registry's `workers`
    /// threads; a call whose deadline passes before it starts is not run. An `async`
    /// procedure is polled inside the returned future, and dropped when its deadline passes. A panic becomes
    /// [`RpcError::Panicked`] and the registry keeps serving.
    ///
    /// **Cancellation**: when `cancel` fires (the transport learnt that the caller gave up)
    /// or the returned future is dropped, the call is cancelled: one still waiting for a
    /// worker is never run, an `async` procedure's task is aborted, and a running synchronous
    /// procedure that observes [`Cancellation`] sees it fire. The answer is then
    /// [`RpcError::Cancelled`]. A transport that cannot tell passes a token nobody fires.
    ///
    /// # Errors
    /// Unknown procedure, bad arguments, the procedure's own error or panic, deadline
    /// exceeded, cancelled.
    pub async fn dispatch(
        &self,
        id: impl fmt::Display,
        call: Call,
        cancel: CancellationToken,
    ) -> CallResult {
        self.dispatch_with_start(id, call, cancel, None).await
    }

    /// [`Registry::dispatch`], with a [`Start`] through which the transport learns when the
    /// call starts and can take it back before: a transport that must give back the requests
    /// it has not started hands them over early with it, so that each worker finds its next
    /// call already queued (see [`Start`]). A call withdrawn before it started never runs,
    /// and answers [`RpcError::Cancelled`].
    ///
    /// # Errors
    /// As [`Registry::dispatch`].
    pub async fn dispatch_withdrawable(
        &self,
        id: impl fmt::Display,
        call: Call,
        cancel: CancellationToken,
        start: Start,
    ) -> CallResult {
        self.dispatch_with_start(id, call, cancel, Some(start))
            .await
    }

    async fn dispatch_with_start(
        &self,
        id: impl fmt::Display,
        call: Call,
        cancel: CancellationToken,
        start: Option<Start>,
    ) -> CallResult {
        let span = tracing::info_span!("request", %id, procedure = %call.procedure);
        // Fires when this future is dropped before the call finished.
        let cancel_on_drop = cancel.drop_guard_ref();
        let cancellation = Cancellation::new(cancel.clone(), call.deadline);
        let procedure: Arc<str> = Arc::from(call.procedure.as_str());
        let result = tokio::select! {
            biased;
            result = self.run(call, procedure.clone(), cancellation, start).instrument(span) => result,
            () = cancel.cancelled() => {
                tracing::debug!("cancelled by the caller");
                Err(RpcError::Cancelled)
            }
        };
        // Finished: nothing left to stop (a cancel now would only lock the token again).
        cancel_on_drop.disarm();
        metrics::called(&procedure, &result);
        result
    }

    async fn run(
        &self,
        call: Call,
        procedure: Arc<str>,
        cancel: Cancellation,
        start: Option<Start>,
    ) -> CallResult {
        let deadline = call.deadline;
        let invocation = self.invoke(&call, &cancel)?;
        // One clock read for the deadline check, the time queued for a worker and the run
        // time (they are not free on every machine: a tenth of the consumer's time went to
        // reading the clock).
        let started = tokio::time::Instant::now();
        if deadline.passed_at(started) {
            return Err(skipped());
        }
        let result = match invocation {
            Invocation::Blocking(job) => {
                let work = Work::Single(job);
                self.workers
                    .run(procedure.clone(), work, cancel, start, started.into_std())
                    .await
            }
            Invocation::Batch(mut batch) => {
                batch.max = self.limit_batch(batch.max);
                let work = Work::Batch(batch);
                self.workers
                    .run(procedure.clone(), work, cancel, start, started.into_std())
                    .await
            }
            Invocation::Async(future) => {
                if start
                    .as_ref()
                    .is_some_and(|start| !start.begin(started.into_std()))
                {
                    return Err(withdrawn());
                }
                tracing::info!("running");
                // Polled inline, in the transport's own task: no task to spawn, and on a
                // multi-threaded runtime no hop to another thread and back (docs/benchmarks.md).
                // Dropped (so stopped) at the deadline and when this future is dropped.
                let guarded = AssertUnwindSafe(future).catch_unwind();
                let result = match timeout_at(deadline.instant(), guarded).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(payload)) => Err(RpcError::Panicked(panic_message(payload.as_ref()))),
                    Err(_) => Err(RpcError::DeadlineExceeded),
                };
                let ran = started.elapsed();
                metrics::ran(&procedure, ran);
                if let Some(start) = start {
                    start.finish(ran);
                }
                result
            }
        };
        // The clock is read for the log line only when it is written (a tracing field's value
        // is evaluated only then): a synchronous call's worker measured its run already.
        let elapsed_ms = || started.elapsed().as_secs_f64() * 1e3;
        match &result {
            Ok(_) => tracing::info!(elapsed_ms = elapsed_ms(), "done"),
            Err(err) => tracing::info!(elapsed_ms = elapsed_ms(), %err, "failed"),
        }
        result
    }

    fn invoke(&self, call: &Call, cancel: &Cancellation) -> Result<Invocation, RpcError> {
        let unknown = || {
            RpcError::UnknownProcedure(format!("no procedure `{}` is registered", call.procedure))
        };
        let (handler, method) = call.procedure.rsplit_once('.').ok_or_else(unknown)?;
        let handler = self.handlers.get(handler).ok_or_else(unknown)?;
        if !handler.procedures().iter().any(|p| p.method == method) {
            return Err(unknown());
        }
        Arc::clone(handler).invoke(method, call.encoding, &call.args, cancel)
    }
}

/// The answer of a call its transport took back before it started.
fn withdrawn() -> RpcError {
    tracing::debug!("withdrawn by its transport before it started: not run");
    RpcError::Cancelled
}

fn skipped() -> RpcError {
    tracing::debug!("deadline passed before the call started: not run");
    RpcError::DeadlineExceeded
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
