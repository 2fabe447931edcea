//! [`Registry`]: the handlers a consumer serves, and the execution of calls to them.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{timeout_at, Instant};
use tracing::Instrument;

use crate::handler::{CallResult, Invocation};
use crate::workers::Workers;
use crate::{Call, Handler, RpcError};

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
/// assert_eq!(registry.dispatch("doc", call).await.unwrap(), b"hello, world");
/// # }
/// ```
pub struct Registry {
    handlers: BTreeMap<String, Arc<dyn Handler>>,
    workers: Workers,
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
            .finish()
    }
}

impl Registry {
    /// An empty registry with [`DEFAULT_WORKERS`] workers.
    pub fn new() -> Self {
        Self {
            handlers: BTreeMap::new(),
            workers: Workers::new(DEFAULT_WORKERS),
        }
    }

    /// The same registry running at most `workers` synchronous procedures at once (at least 1).
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = Workers::new(workers);
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
    /// The deadline starts now, from the call's remaining timeout. Arguments are decoded first;
    /// a synchronous procedure then waits for one of the registry's `workers` threads; a call
    /// whose deadline passes before it starts, or whose caller stopped waiting, is not run. An
    /// `async` procedure runs as a task of its own, aborted when its deadline passes. A panic
    /// becomes [`RpcError::Panicked`] and the registry keeps serving.
    ///
    /// # Errors
    /// Unknown procedure, bad arguments, the procedure's own error or panic, deadline exceeded.
    pub async fn dispatch(&self, id: impl fmt::Display, call: Call) -> CallResult {
        let span = tracing::info_span!("request", %id, procedure = %call.procedure);
        self.run(call).instrument(span).await
    }

    async fn run(&self, call: Call) -> CallResult {
        let deadline = deadline_after(call.timeout);
        let invocation = self.invoke(&call)?;
        let started = std::time::Instant::now();
        tracing::info!("running");
        let result = match invocation {
            Invocation::Blocking(job) => {
                if Instant::now() >= deadline {
                    return Err(skipped());
                }
                self.workers.run(job, deadline).await
            }
            Invocation::Async(future) => {
                if Instant::now() >= deadline {
                    return Err(skipped());
                }
                // A task of its own: measured faster than polling the procedure inline
                // (replies then come back in batches; docs/benchmarks.md). Aborted at the
                // deadline.
                let task = tokio::spawn(future);
                let abort = task.abort_handle();
                match timeout_at(deadline, task).await {
                    Ok(joined) => joined.unwrap_or_else(|e| Err(join_error(e))),
                    Err(_) => {
                        abort.abort();
                        Err(RpcError::DeadlineExceeded)
                    }
                }
            }
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        match &result {
            Ok(_) => tracing::info!(elapsed_ms, "done"),
            Err(err) => tracing::info!(elapsed_ms, %err, "failed"),
        }
        result
    }

    fn invoke(&self, call: &Call) -> Result<Invocation, RpcError> {
        let unknown = || {
            RpcError::UnknownProcedure(format!("no procedure `{}` is registered", call.procedure))
        };
        let (handler, method) = call.procedure.rsplit_once('.').ok_or_else(unknown)?;
        let handler = self.handlers.get(handler).ok_or_else(unknown)?;
        if !handler.procedures().iter().any(|p| p.method == method) {
            return Err(unknown());
        }
        handler.invoke(method, call.encoding, &call.args)
    }
}

/// The instant `timeout` from now, capped so that an absurd timeout cannot overflow.
pub fn deadline_after(timeout: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(365 * 24 * 3600);
    Instant::now() + timeout.min(FAR)
}

fn skipped() -> RpcError {
    tracing::debug!("deadline passed before the call started: not run");
    RpcError::DeadlineExceeded
}

fn join_error(err: tokio::task::JoinError) -> RpcError {
    match err.try_into_panic() {
        Ok(payload) => RpcError::Panicked(panic_message(payload.as_ref())),
        Err(_) => RpcError::Shutdown,
    }
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
