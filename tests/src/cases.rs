//! The conformance cases. Each starts its own server through the fixture, so cases run in
//! parallel and a failure leaves nothing behind for the next.
//!
//! Timing cases check order and overlap with timestamps recorded inside the procedures; the
//! one wall-clock bound (a deadline answered on time) has a margin of seconds, far above
//! scheduling noise and far below the time the procedure would take.

use std::time::{Duration, Instant};

use futures::future::join_all;
use rpc_core::{Call, Encoding, RpcError};

use crate::procedures::unique_name;
use crate::{Fixture, Server};

async fn raw(
    server: &Server<impl Fixture>,
    method: &str,
    encoding: Encoding,
    args: &[u8],
) -> Result<Vec<u8>, RpcError> {
    let call = Call::new(server.procedure(method), encoding, args.to_vec());
    server.client().await.send(call).await
}

fn bad_arguments(result: Result<impl std::fmt::Debug, RpcError>) -> String {
    match result {
        Err(RpcError::BadArguments(message)) => message,
        other => panic!("expected bad arguments, got {other:?}"),
    }
}

/// Bincode through the typed client: strings and numbers come back exact.
pub async fn round_trip_bincode<F: Fixture>() {
    let server = Server::<F>::start(1).await;
    let suite = server.suite().await;
    assert_eq!(
        suite.echo("héllo wörld".into()).await,
        Ok("héllo wörld".into())
    );
    assert_eq!(suite.add(2, -44).await, Ok(-42));
    assert_eq!(suite.add(i64::MAX, 0).await, Ok(i64::MAX));
    server.stop().await;
}

/// JSON: arguments as an object keyed by parameter name, or positional; results plain JSON.
pub async fn round_trip_json<F: Fixture>() {
    let server = Server::<F>::start(1).await;
    let add = raw(&server, "add", Encoding::Json, br#"{"b": 40, "a": 2}"#).await;
    assert_eq!(add.as_deref(), Ok(&b"42"[..]));
    let add = raw(&server, "add", Encoding::Json, b"[9007199254740993, 0]").await;
    assert_eq!(
        add.as_deref(),
        Ok(&b"9007199254740993"[..]),
        "integers stay exact"
    );
    let echo = raw(
        &server,
        "echo",
        Encoding::Json,
        r#"{"text": "h\u00e9 \"q\""}"#.as_bytes(),
    )
    .await;
    assert_eq!(echo.as_deref(), Ok(r#""hé \"q\"""#.as_bytes()));
    server.stop().await;
}

/// Text: tokens parsed with FromStr; a final String takes the rest of the line.
pub async fn round_trip_text<F: Fixture>() {
    let server = Server::<F>::start(1).await;
    let add = raw(&server, "add", Encoding::Text, b"2 40").await;
    assert_eq!(add.as_deref(), Ok(&b"42"[..]));
    let echo = raw(&server, "echo", Encoding::Text, b"the rest  of the line\n").await;
    assert_eq!(echo.as_deref(), Ok(&b"the rest  of the line"[..]));
    server.stop().await;
}

/// An `async fn` procedure round-trips like a synchronous one.
pub async fn async_procedure<F: Fixture>() {
    let server = Server::<F>::start(1).await;
    let suite = server.suite().await;
    assert_eq!(
        suite.echo_async("from async".into()).await,
        Ok("from async".into())
    );
    server.stop().await;
}

/// 1,000 calls from 64 concurrent tasks: every reply matches its own call.
pub async fn many_concurrent_calls<F: Fixture>() {
    const TASKS: i64 = 64;
    const CALLS: i64 = 1_000;
    let server = Server::<F>::start(2).await;
    let suite = server.suite().await;
    let tasks = (0..TASKS).map(|task| {
        let suite = suite.clone();
        tokio::spawn(async move {
            let mut done = 0;
            for call in (task..CALLS).step_by(TASKS as usize) {
                if call % 2 == 0 {
                    assert_eq!(suite.add(call, 1_000_000).await, Ok(call + 1_000_000));
                } else {
                    let text = format!("call {call}");
                    assert_eq!(suite.echo(text.clone()).await, Ok(text));
                }
                done += 1;
            }
            done
        })
    });
    let done: i64 = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .sum();
    assert_eq!(done, CALLS);
    server.stop().await;
}

/// A procedure nobody serves fails at once with `unknown procedure`.
pub async fn unknown_procedure<F: Fixture>() {
    let server = Server::<F>::start(1).await;
    let client = server.client().await.with_timeout(Duration::from_secs(10));
    for procedure in [
        server.procedure("no_such_method"),
        format!("{}.add", unique_name("nobody")),
    ] {
        let call = Call::new(procedure.clone(), Encoding::Json, b"{}".to_vec());
        match client.send(call).await {
            Err(RpcError::UnknownProcedure(message)) => {
                assert!(message.contains(&procedure) || !message.is_empty())
            }
            other => panic!("expected unknown procedure for {procedure}, got {other:?}"),
        }
    }
    server.stop().await;
}

/// Too few or too many arguments: `bad arguments` naming the parameter or the signature.
pub async fn wrong_argument_count<F: Fixture>() {
    let server = Server::<F>::start(1).await;
    let missing = bad_arguments(raw(&server, "add", Encoding::Json, br#"{"a": 1}"#).await);
    assert!(missing.contains("`b`"), "{missing}");
    let bincode = rpc_core::encoding::to_bincode(&(1i64,)).expect("encode");
    let missing = bad_arguments(raw(&server, "add", Encoding::Bincode, &bincode).await);
    assert!(missing.contains("`b`"), "{missing}");
    let extra = bad_arguments(raw(&server, "add", Encoding::Text, b"1 2 3").await);
    assert!(
        extra.contains("too many arguments") && extra.contains("a, b"),
        "{extra}"
    );
    server.stop().await;
}

/// An argument of the wrong type: `bad arguments` naming the parameter.
pub async fn wrong_argument_type<F: Fixture>() {
    let server = Server::<F>::start(1).await;
    let json = bad_arguments(raw(&server, "add", Encoding::Json, br#"{"a": "one", "b": 2}"#).await);
    assert!(json.contains("`a`"), "{json}");
    let text = bad_arguments(raw(&server, "add", Encoding::Text, b"1 two").await);
    assert!(text.contains("`b`"), "{text}");
    server.stop().await;
}

/// A procedure's own error text reaches the caller as `Failed`.
pub async fn procedure_error_reaches_caller<F: Fixture>() {
    let server = Server::<F>::start(1).await;
    let suite = server.suite().await;
    assert_eq!(
        suite.fail("disk full on /var".into()).await,
        Err(RpcError::Failed("disk full on /var".into()))
    );
    let text = raw(&server, "fail", Encoding::Text, b"no luck").await;
    assert_eq!(text, Err(RpcError::Failed("no luck".into())));
    server.stop().await;
}

/// A panic becomes `Panicked` with its message, and the next call works.
pub async fn panic_then_next_call_works<F: Fixture>() {
    let server = Server::<F>::start(1).await;
    let suite = server.suite().await;
    match suite.explode("boom at step 3".into()).await {
        Err(RpcError::Panicked(message)) => {
            assert!(message.contains("boom at step 3"), "{message}")
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    assert_eq!(
        suite.echo("still here".into()).await,
        Ok("still here".into())
    );
    server.stop().await;
}

/// A call whose procedure outlives its deadline gets `deadline exceeded` on time, and the
/// server keeps serving.
pub async fn deadline_exceeded_on_time<F: Fixture>() {
    let server = Server::<F>::start(2).await;
    let suite = server.suite().await;
    let deadline = Duration::from_millis(300);
    let started = Instant::now();
    let late = suite.clone().with_timeout(deadline).sleep(4_000).await;
    let elapsed = started.elapsed();
    assert_eq!(late, Err(RpcError::DeadlineExceeded));
    assert!(
        elapsed >= deadline,
        "answered before the deadline: {elapsed:?}"
    );
    assert!(
        elapsed < deadline + Duration::from_secs(2),
        "deadline answered late: {elapsed:?}"
    );
    assert_eq!(suite.echo("after".into()).await, Ok("after".into()));
    server.stop().await;
}

/// A call whose deadline passes while it waits for the only worker is never run.
pub async fn expired_call_is_not_run<F: Fixture>() {
    let server = Server::<F>::start(1).await;
    let suite = server.suite().await;
    let busy = tokio::spawn({
        let suite = suite.clone();
        async move { suite.sleep(800).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let tag = unique_name("tag");
    let expired = suite
        .clone()
        .with_timeout(Duration::from_millis(200))
        .mark(tag.clone())
        .await;
    assert_eq!(expired, Err(RpcError::DeadlineExceeded));
    assert!(busy.await.expect("task").is_ok());
    assert_eq!(
        suite.was_marked(tag).await,
        Ok(false),
        "the expired call ran"
    );
    server.stop().await;
}

async fn two_sleeps<F: Fixture>(
    workers: usize,
) -> (crate::procedures::Span, crate::procedures::Span) {
    let server = Server::<F>::start(workers).await;
    let suite = server.suite().await;
    let (a, b) = tokio::join!(suite.sleep(400), suite.sleep(400));
    server.stop().await;
    (a.expect("first sleep"), b.expect("second sleep"))
}

/// With one worker, two slow calls run one after the other.
pub async fn one_worker_never_overlaps<F: Fixture>() {
    let (a, b) = two_sleeps::<F>(1).await;
    assert!(
        !a.overlaps(&b),
        "calls overlapped with one worker: {a:?} {b:?}"
    );
}

/// With two workers, two slow calls run at the same time.
pub async fn two_workers_overlap<F: Fixture>() {
    let (a, b) = two_sleeps::<F>(2).await;
    assert!(
        a.overlaps(&b),
        "calls did not overlap with two workers: {a:?} {b:?}"
    );
}

/// A 1 MiB argument arrives whole, and a 1 MiB result comes back whole.
pub async fn one_mib_argument<F: Fixture>() {
    let server = Server::<F>::start(1).await;
    let suite = server.suite().await;
    let big: String = (0..1 << 20)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    assert_eq!(suite.length(big.clone()).await, Ok(1 << 20));
    assert_eq!(suite.echo(big.clone()).await.as_deref(), Ok(big.as_str()));
    server.stop().await;
}

/// A running synchronous procedure that observes cancellation stops at its deadline: the
/// caller gets `deadline exceeded` on time and the only worker is free again at once.
pub async fn running_call_stops_at_its_deadline<F: Fixture>() {
    let server = Server::<F>::start(1).await;
    let suite = server.suite().await;
    let tag = unique_name("spin");
    let late = suite
        .clone()
        .with_timeout(Duration::from_millis(300))
        .spin(tag.clone(), 20_000)
        .await;
    assert_eq!(late, Err(RpcError::DeadlineExceeded));
    let asked = Instant::now();
    assert_eq!(suite.spin(tag.clone(), 1).await, Ok(1));
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "the worker was still busy: {:?}",
        asked.elapsed()
    );
    let spins = server.record.spins(&tag);
    assert_eq!(spins.started, 2);
    assert_eq!(
        spins.stopped_early, 1,
        "the first call ran on past its deadline"
    );
    server.stop().await;
}

/// Calls their caller drops are cancelled on the consumer: on a one-worker server, of ten
/// long calls dropped once the first has started, the running one stops, the queued ones never
/// start (but one or two that the worker took just before their cancellation landed, which
/// stop at once), and a new call is answered at once. (Transports that can tell the consumer:
/// the in-memory one and TCP's `Cancel` message. AMQP has no such message; see its crate docs.)
pub async fn dropped_calls_are_cancelled<F: Fixture>() {
    let server = Server::<F>::start(1).await;
    let suite = server.suite().await;
    let tag = unique_name("spin");
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let (suite, tag) = (suite.clone(), tag.clone());
            tokio::spawn(async move { suite.spin(tag, 20_000).await })
        })
        .collect();
    let waiting_since = Instant::now();
    while server.record.spins(&tag).started == 0 {
        assert!(
            waiting_since.elapsed() < Duration::from_secs(10),
            "no call started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for call in &calls {
        call.abort();
    }
    // Aborting a task is asynchronous: wait until each call's future has been dropped.
    for call in calls {
        assert!(
            call.await.is_err_and(|e| e.is_cancelled()),
            "a call finished"
        );
    }
    let asked = Instant::now();
    assert_eq!(suite.spin(tag.clone(), 1).await, Ok(1));
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "the worker was still busy: {:?}",
        asked.elapsed()
    );
    // The cancellations reach the consumer one after the other: when the running call stops,
    // the worker may take the next queued call just before that call's own cancellation
    // lands; it then stops at its first check, having done nothing. No dropped call finishes
    // its work, and nearly all of the queued ones never start.
    let spins = server.record.spins(&tag);
    assert_eq!(
        spins.started - spins.stopped_early,
        1,
        "a dropped call finished its work: {spins:?}"
    );
    assert!(
        spins.stopped_early >= 1 && spins.started <= 3,
        "queued calls ran after their caller dropped them: {spins:?}"
    );
    server.stop().await;
}

/// A batch procedure under 1,000 concurrent calls on one worker: each caller gets its own
/// answer or its own error, the calls waiting ran in batches of at most `max`, and some
/// batches held more than one call.
pub async fn batch_results_matched_to_callers<F: Fixture>() {
    let server = Server::<F>::start(1).await;
    let suite = server.suite().await;
    let answers = join_all((0..1000i64).map(|n| {
        let suite = suite.clone();
        async move { (n, suite.square(n).await) }
    }))
    .await;
    for (n, answer) in answers {
        match n {
            13 => assert_eq!(answer, Err(RpcError::Failed("unlucky".into()))),
            n => assert_eq!(answer, Ok(n * n), "square({n})"),
        }
    }
    let sizes = server.record.batch_sizes();
    assert_eq!(sizes.iter().sum::<usize>(), 1000, "every call ran once");
    assert!(
        sizes.iter().all(|&size| size <= 4),
        "a batch over max: {sizes:?}"
    );
    assert!(
        sizes.iter().any(|&size| size > 1),
        "never batched: {sizes:?}"
    );
    server.stop().await;
}

/// Occupies a one-worker server's only worker for `ms` milliseconds, returning once the
/// sleep has started, so that calls made next wait and form one batch.
async fn occupy_the_worker(
    suite: &crate::procedures::SuiteClient,
    ms: u64,
) -> tokio::task::JoinHandle<Result<crate::procedures::Span, RpcError>> {
    let busy = tokio::spawn({
        let suite = suite.clone();
        async move { suite.sleep(ms).await }
    });
    // No call can ask whether the sleep started (it would wait behind it): wait a time far
    // above one call's latency on any transport here, far below the sleep.
    tokio::time::sleep(Duration::from_millis(150)).await;
    busy
}

/// A panic in a batch procedure fails every call of that batch with `Panicked` (each caller
/// hears of it), calls in other batches are answered, and the next batch runs.
pub async fn batch_panic_fails_its_batch_only<F: Fixture>() {
    let server = Server::<F>::start(1).await;
    let suite = server.suite().await;
    let busy = occupy_the_worker(&suite, 500).await;
    let answers = join_all([2i64, -666, 3, 4, 5, 6].map(|n| {
        let suite = suite.clone();
        async move { (n, suite.square(n).await) }
    }))
    .await;
    assert!(busy.await.expect("task").is_ok());
    let batches = server.record.batches();
    for (n, answer) in answers {
        let batch = batches
            .iter()
            .find(|batch| batch.contains(&n))
            .unwrap_or_else(|| panic!("square({n}) never ran: {batches:?}"));
        if batch.contains(&-666) {
            match answer {
                Err(RpcError::Panicked(message)) => {
                    assert!(message.contains("devil"), "{message}")
                }
                other => panic!("square({n}) shared a batch with -666, got {other:?}"),
            }
        } else {
            assert_eq!(answer, Ok(n * n), "square({n}) in {batch:?}");
        }
    }
    assert!(
        batches
            .iter()
            .any(|batch| batch.contains(&-666) && batch.len() > 1),
        "the panic never hit a batch of several calls: {batches:?}"
    );
    assert_eq!(suite.square(7).await, Ok(49), "the next batch runs");
    server.stop().await;
}

/// A call of a batch procedure whose deadline passes while it waits is left out of the batch
/// that takes the calls waiting with it: it never runs, and the others are answered.
pub async fn batch_expired_call_is_skipped<F: Fixture>() {
    let server = Server::<F>::start(1).await;
    let suite = server.suite().await;
    let busy = occupy_the_worker(&suite, 600).await;
    let patient = tokio::spawn({
        let suite = suite.clone();
        async move { join_all([3i64, 4].map(|n| suite.square(n))).await }
    });
    let hurried = suite.clone().with_timeout(Duration::from_millis(150));
    assert_eq!(hurried.square(2).await, Err(RpcError::DeadlineExceeded));
    assert!(busy.await.expect("task").is_ok());
    assert_eq!(patient.await.expect("task"), [Ok(9), Ok(16)]);
    let batches = server.record.batches();
    assert!(
        batches.iter().all(|batch| !batch.contains(&2)),
        "the expired call ran: {batches:?}"
    );
    assert!(
        batches.iter().any(|batch| batch.len() > 1),
        "the calls waiting did not form a batch: {batches:?}"
    );
    server.stop().await;
}
