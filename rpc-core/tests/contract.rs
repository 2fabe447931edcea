//! The contract a handler is written against: state in `&self`, one deadline, and
//! cancellation reaching a running synchronous procedure (in-memory transport; the
//! conformance suite runs the same over every transport).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_core::{memory, Cancellation, Registry, RpcError, Start};

/// A handler that owns its state.
struct Counter {
    total: AtomicU64,
}

#[rpc_core::handler]
impl Counter {
    /// Adds `n` to the running total and returns it.
    pub fn add(&self, n: u64) -> u64 {
        self.total.fetch_add(n, Ordering::Relaxed) + n
    }

    /// The running total, read by an `async` procedure.
    pub async fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// An associated function beside the methods.
    pub fn double(n: u64) -> u64 {
        n * 2
    }
}

#[tokio::test]
async fn procedures_share_their_handlers_state() {
    let mut registry = Registry::new().with_workers(2);
    registry.register(Counter {
        total: AtomicU64::new(0),
    });
    let (transport, _server) = memory::spawn(registry);
    let counter = CounterClient::new(transport);
    assert_eq!(counter.add(2).await, Ok(2));
    assert_eq!(counter.add(3).await, Ok(5));
    assert_eq!(counter.total().await, Ok(5));
    assert_eq!(counter.double(21).await, Ok(42));
}

/// What a long procedure did, shared with the test.
#[derive(Default)]
struct Record {
    started: AtomicU64,
    stopped_early: AtomicU64,
    /// Microseconds from the cancellation (set by the test) to the procedure noticing it.
    cancelled_at_us: AtomicU64,
}

struct Spinner {
    record: Arc<Record>,
    epoch: Instant,
}

#[rpc_core::handler]
impl Spinner {
    /// Busy for `ms` milliseconds, checking for cancellation every millisecond.
    pub fn spin(&self, ms: u64, cancel: Cancellation) -> Result<u64, RpcError> {
        self.record.started.fetch_add(1, Ordering::SeqCst);
        let until = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < until {
            if cancel.is_cancelled() {
                self.record.stopped_early.fetch_add(1, Ordering::SeqCst);
                let at = self.epoch.elapsed().as_micros() as u64;
                self.record.cancelled_at_us.store(at, Ordering::SeqCst);
                return cancel.check().map(|()| 0);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(ms)
    }
}

#[tokio::test]
async fn dropped_calls_never_run_and_the_running_one_stops() {
    let record = Arc::new(Record::default());
    let epoch = Instant::now();
    let mut registry = Registry::new().with_workers(1);
    registry.register(Spinner {
        record: record.clone(),
        epoch,
    });
    let (transport, _server) = memory::spawn(registry);
    let spinner = SpinnerClient::new(transport);

    // Ten calls of ten seconds each on one worker; all dropped once the first has started.
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let spinner = spinner.clone();
            tokio::spawn(async move { spinner.spin(10_000).await })
        })
        .collect();
    while record.started.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cancelled_at = epoch.elapsed();
    for call in &calls {
        call.abort();
    }

    // A new call is answered at once: the worker is free again.
    let asked = Instant::now();
    assert_eq!(spinner.spin(1).await, Ok(1));
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );

    assert_eq!(record.stopped_early.load(Ordering::SeqCst), 1);
    // The nine queued calls never ran: only the first and the new one started.
    assert_eq!(record.started.load(Ordering::SeqCst), 2);
    let noticed = Duration::from_micros(record.cancelled_at_us.load(Ordering::SeqCst));
    let delay = noticed.saturating_sub(cancelled_at);
    assert!(
        delay < Duration::from_millis(200),
        "noticed after {delay:?}"
    );
}

#[tokio::test]
async fn a_running_procedure_sees_its_deadline() {
    let record = Arc::new(Record::default());
    let mut registry = Registry::new();
    registry.register(Spinner {
        record: record.clone(),
        epoch: Instant::now(),
    });
    let (transport, _server) = memory::spawn(registry);
    let spinner = SpinnerClient::new(transport).with_timeout(Duration::from_millis(100));
    assert_eq!(spinner.spin(10_000).await, Err(RpcError::DeadlineExceeded));
    let spinner = spinner.with_timeout(Duration::from_secs(5));
    let asked = Instant::now();
    assert_eq!(spinner.spin(1).await, Ok(1));
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(record.stopped_early.load(Ordering::SeqCst), 1);
}

/// Sets its flag when dropped: shows that an `async` procedure's future was stopped.
struct SetOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// `async` procedures that misbehave: they run inside the registry's dispatch, not in a task
/// of their own, so the registry itself must catch the panic and stop the hang.
struct Unruly {
    dropped: Arc<std::sync::atomic::AtomicBool>,
}

#[rpc_core::handler]
impl Unruly {
    /// Panics with `message`.
    pub async fn blow(message: String) -> String {
        panic!("{message}")
    }

    /// Never answers; notes when its future is dropped.
    pub async fn hang(&self) -> String {
        let _dropped = SetOnDrop(self.dropped.clone());
        std::future::pending::<()>().await;
        String::new()
    }
}

#[tokio::test]
async fn an_async_procedure_that_panics_or_hangs_is_answered_and_stopped() {
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut registry = Registry::new();
    registry.register(Unruly {
        dropped: dropped.clone(),
    });
    let registry = Arc::new(registry);
    let call = |procedure: &str, args: Vec<u8>, timeout: Duration| {
        rpc_core::Call::new(procedure, rpc_core::Encoding::Bincode, args).with_timeout(timeout)
    };
    let never = tokio_util::sync::CancellationToken::new;
    let args = bincode::serialize(&("boom in async".to_string(),)).expect("args");
    let blown = registry
        .dispatch(
            1,
            call("unruly.blow", args, Duration::from_secs(5)),
            never(),
        )
        .await;
    match blown {
        Err(RpcError::Panicked(message)) => assert!(message.contains("boom in async"), "{message}"),
        other => panic!("expected a panic error, got {other:?}"),
    }
    let asked = Instant::now();
    let hung = registry
        .dispatch(
            2,
            call("unruly.hang", Vec::new(), Duration::from_millis(100)),
            never(),
        )
        .await;
    assert_eq!(hung, Err(RpcError::DeadlineExceeded));
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        dropped.load(Ordering::SeqCst),
        "the hanging future was not dropped"
    );
}

#[tokio::test]
async fn a_withdrawn_call_never_runs_and_a_started_one_cannot_be_withdrawn() {
    let mut registry = Registry::new();
    registry.register(Counter {
        total: AtomicU64::new(0),
    });
    let registry = Arc::new(registry);
    let add = |n: u64| {
        let args = bincode::serialize(&(n,)).expect("args");
        rpc_core::Call::new("counter.add", rpc_core::Encoding::Bincode, args)
    };
    let total = || rpc_core::Call::new("counter.total", rpc_core::Encoding::Bincode, Vec::new());
    let never = tokio_util::sync::CancellationToken::new;

    // Withdrawn before a worker (sync) or the first poll (async) took them: neither runs.
    for call in [add(5), total()] {
        let start = Start::new();
        assert!(start.withdraw());
        let answer = registry
            .dispatch_withdrawable(1, call, never(), start.clone())
            .await;
        assert_eq!(answer, Err(RpcError::Cancelled));
        assert_eq!(start.started_at(), None);
    }

    // Started: it runs to its end, and stays started.
    let start = Start::new();
    let answer = registry
        .dispatch_withdrawable(2, add(7), never(), start.clone())
        .await;
    assert_eq!(answer, Ok(bincode::serialize(&7u64).expect("encode")));
    assert!(start.started_at().is_some());
    assert!(!start.withdraw(), "a call that ran cannot be taken back");
    let answer = registry.dispatch(3, total(), never()).await;
    assert_eq!(
        answer,
        Ok(bincode::serialize(&7u64).expect("encode")),
        "only the call that started added to the total"
    );
}

#[tokio::test]
async fn a_calls_run_time_is_timed_where_it_ran() {
    let mut registry = Registry::new();
    registry.register(Spinner {
        record: Arc::new(Record::default()),
        epoch: Instant::now(),
    });
    registry.register(Counter {
        total: AtomicU64::new(0),
    });
    let registry = Arc::new(registry);
    let never = tokio_util::sync::CancellationToken::new;
    let spin = |ms: u64| {
        let args = bincode::serialize(&(ms,)).expect("args");
        rpc_core::Call::new("spinner.spin", rpc_core::Encoding::Bincode, args)
    };

    // A synchronous call: one poll hands it to the worker, then its transport's task is busy
    // elsewhere (the runtime's thread blocked) while the worker runs it and answers.
    let start = Start::new();
    let dispatched = registry.dispatch_withdrawable(1, spin(50), never(), start.clone());
    tokio::pin!(dispatched);
    assert!(futures::poll!(&mut dispatched).is_pending());
    std::thread::sleep(Duration::from_millis(300));
    let answer = dispatched.await;
    assert_eq!(answer, Ok(bincode::serialize(&50u64).expect("encode")));
    let since_start = start.started_at().expect("started").elapsed();
    assert!(since_start >= Duration::from_millis(290), "{since_start:?}");
    let ran = start.ran_for().expect("a finished call has a run time");
    assert!(
        ran >= Duration::from_millis(50) && ran < Duration::from_millis(200),
        "the run time counts only the run, not the wait for the transport: {ran:?}"
    );

    // An `async` call is timed where it is polled; a call not finished has no run time.
    let start = Start::new();
    let total = rpc_core::Call::new("counter.total", rpc_core::Encoding::Bincode, Vec::new());
    let answer = registry
        .dispatch_withdrawable(2, total, never(), start.clone())
        .await;
    assert_eq!(answer, Ok(bincode::serialize(&0u64).expect("encode")));
    assert!(start
        .ran_for()
        .is_some_and(|ran| ran < Duration::from_millis(100)));
    assert_eq!(Start::new().ran_for(), None);
}
