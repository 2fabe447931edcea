//! Hostile clients against a real TCP consumer process, all at once (issue 7, item 2).
//!
//! One `consumer --transport tcp --no-model`, with transport-tcp's default limits, faces at the
//! same time: 500 idle connections (half silent, half handshaken), a client that pipelines
//! Fibonacci calls with large replies and reads them a few bytes per 100 ms, one that never
//! reads its (64 KiB) replies, and a stream of random bytes, truncated frames, 4 GiB length
//! prefixes and frames one byte over the limit, each on a connection of its own. Meanwhile a
//! well-behaved client's calls must all succeed with the right answer, and the consumer's peak
//! RSS must stay bounded.
//!
//! What the defaults ([`TcpServerConfig::default`]) say must happen: a silent connection is
//! dropped after the handshake timeout (10 s); a handshaken one is held (its idle timeout,
//! 5 min, is longer than the test); a connection holds at most `max_in_flight` (1024) calls,
//! and while one write of its replies is blocked the consumer reads nothing more from it, so a
//! client that does not take its replies is held back, then dropped once that write has been
//! blocked for the write timeout (30 s). The test therefore runs for about 40 s.
//!
//! File descriptors: the test holds about 510 sockets and the consumer as many; both stay
//! under 1024, the usual soft limit, so nothing is raised: the test checks the limit instead.

mod support;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use num_bigint::BigUint;
use rand::{Rng, SeedableRng};
use rpc_apps::workloads::{BigNumber, FibonacciGeneratorClient};
use rpc_core::encoding::to_bincode;
use rpc_core::{Call, Client, Encoding, Request};
use support::Consumer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};
use transport_tcp::{TcpServerConfig, TcpTransport, TcpTransportConfig, DEFAULT_MAX_FRAME};

/// Hello, protocol 4 (transport_tcp::PROTOCOL_VERSION), replies up to 16 MiB.
const HELLO: [u8; 16] = [0, 0, 0, 12, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 1];

/// Idle connections that never send a byte, and idle connections that said hello.
const SILENT: usize = 250;
const HANDSHAKEN: usize = 250;

/// The slow reader's calls: F(100,000) is 69,424 bits, an 8,678-byte reply in bincode, and
/// cheap (about 10 ms in a debug build): even 1024 of them in flight hold the consumer's one
/// worker for seconds, well within the well-behaved client's 30 s timeout. This test is about
/// memory and slow reading, not about a client hogging the workers.
const SLOW_N: i64 = 100_000;
const SLOW_REPLY: u64 = 8_678;
/// What the slow reader reads, and how often.
const SLOW_BYTES: usize = 64;
const SLOW_PACE: Duration = Duration::from_millis(100);
/// Requests the slow reader would send if the consumer read them all (about 140 MB of
/// requests, 17 GB of replies): far more than any socket buffer holds.
const SLOW_BUDGET: u64 = 2_000_000;

/// The non-reader calls a procedure with a 64 KiB name: the `unknown procedure` error that
/// comes back names it, so each call costs the consumer no worker time and 64 KiB of reply.
const NAME_LEN: usize = 64 << 10;
/// Its budget: 1 GiB of requests, so 1 GiB of replies held if the consumer read them all.
const DEAF_BUDGET: u64 = 16_384;

/// The consumer's limits: the binary serves with transport-tcp's defaults.
fn limits() -> TcpServerConfig {
    TcpServerConfig::default()
}

/// Connects and completes the handshake; checks the `Welcome`.
async fn handshake(port: u16) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(&HELLO).await?;
    // A `Welcome` frame: a 4-byte length (it lists the batch procedures), then variant 0.
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).await?;
    let mut welcome = vec![0u8; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut welcome).await?;
    if welcome.get(..8) != Some(&[0, 0, 0, 0, 4, 0, 0, 0][..]) {
        return Err(io::Error::other(format!("not a welcome: {welcome:?}")));
    }
    Ok(stream)
}

/// A `Request` frame (variant 1) for `procedure` with bincode `args`.
fn request_frame(id: u64, procedure: &str, args: Vec<u8>) -> Vec<u8> {
    let call = Call::new(procedure, Encoding::Bincode, args).with_timeout(Duration::from_secs(300));
    let body = to_bincode(&(1u32, Request { id, call })).expect("encode a request");
    let mut frame = u32::try_from(body.len())
        .expect("a small request")
        .to_be_bytes()
        .to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Everything the consumer sends until it closes the connection (a reset counts as closed);
/// `None` when it is still open after `within`.
async fn read_to_close(stream: &mut (impl AsyncRead + Unpin), within: Duration) -> Option<Vec<u8>> {
    let mut answer = Vec::new();
    let read = timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.ok().map(|()| answer)
}

/// The message of the `Error` frame carrying `Protocol` (7) that starts `frames`, if it does.
fn protocol_error(frames: &[u8]) -> Option<String> {
    let body = frames.get(4..)?;
    if body.get(..8)? != [2, 0, 0, 0, 7, 0, 0, 0] {
        return None;
    }
    let len = usize::try_from(u64::from_le_bytes(body.get(8..16)?.try_into().ok()?)).ok()?;
    let message = body.get(16..16usize.checked_add(len)?)?;
    Some(String::from_utf8_lossy(message).into_owned())
}

/// This process's soft limit on open files.
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(u64::MAX) // "unlimited"
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// F(n) by addition, exactly in a `u128` for n up to 185 (F(186) fits, but the F(187) computed with it does not).
fn fibonacci(n: u32) -> u128 {
    let (mut a, mut b) = (0u128, 1u128);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
}

/// What a well-behaved client saw.
#[derive(Default)]
struct Calls {
    ok: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Calls {
    fn lock_failures(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Calls `fibonacci_generator.calculate(n)` through a pool, one call at a time, until `stop`,
/// checking every answer.
async fn well_behaved(port: u16, calls: Arc<Calls>, stop: Arc<AtomicBool>) {
    let pool = TcpTransport::new([format!("127.0.0.1:{port}")], TcpTransportConfig::default())
        .expect("a pool");
    let fib = FibonacciGeneratorClient::from_client(
        Client::new(pool).with_timeout(Duration::from_secs(30)),
    );
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        n = n % 185 + 1;
        let expected = BigNumber(BigUint::from(fibonacci(n)));
        match fib.calculate(i64::from(n)).await {
            Ok(got) if got == expected => {
                calls.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(got) => calls.lock_failures().push(format!("F({n}) = {got}?")),
            Err(err) => calls.lock_failures().push(format!("F({n}): {err}")),
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// How a client that pipelines calls without taking its replies ended.
#[derive(Debug)]
struct Pipelined {
    /// Requests written whole before writing failed (or the budget ran out).
    sent: u64,
    /// Why writing stopped; `None` when the whole budget went through.
    write_error: Option<io::Error>,
    /// Reply bytes it read.
    read: u64,
    /// Whether the consumer closed the connection (end of stream or reset).
    closed: bool,
}

/// Handshakes, then writes `budget` requests made by `frame` as fast as the consumer takes
/// them, reading `pace`'s bytes of replies per interval (or nothing), until writing fails.
/// Then reads what is left, to see the connection closed.
async fn pipeline(
    port: u16,
    budget: u64,
    frame: impl Fn(u64) -> Vec<u8> + Send + 'static,
    pace: Option<(usize, Duration)>,
) -> Pipelined {
    let stream = handshake(port).await.expect("handshake");
    let (mut reader, mut writer) = stream.into_split();
    let mut writing = tokio::spawn(async move {
        for id in 0..budget {
            if let Err(err) = writer.write_all(&frame(id + 1)).await {
                return (id, Some(err));
            }
        }
        (budget, None)
    });
    let mut buf = vec![0u8; 64 << 10];
    let (mut read, mut closed) = (0u64, false);
    let (sent, write_error) = loop {
        let slow_read = async {
            let (bytes, every) = pace.unwrap_or((0, Duration::ZERO));
            sleep(every).await;
            reader.read(&mut buf[..bytes]).await
        };
        tokio::select! {
            written = &mut writing => break written.expect("the writer task"),
            got = slow_read, if pace.is_some() && !closed => match got {
                Ok(0) | Err(_) => closed = true,
                Ok(n) => read += n as u64,
            },
        }
    };
    if !closed {
        let rest = read_to_close(&mut reader, Duration::from_secs(30)).await;
        if let Some(rest) = rest {
            read += rest.len() as u64;
            closed = true;
        }
    }
    Pipelined {
        sent,
        write_error,
        read,
        closed,
    }
}

/// What became of a pipelining client, or `None` (the task stopped) if it still runs after
/// `within`.
async fn ended(
    mut client: tokio::task::JoinHandle<Pipelined>,
    within: Duration,
) -> Option<Pipelined> {
    match timeout(within, &mut client).await {
        Ok(joined) => Some(joined.expect("the pipelining client")),
        Err(_) => {
            client.abort();
            None
        }
    }
}

/// One round of bad input, each on a connection of its own; the failures it found.
async fn hostile_round(port: u16, seed: u64) -> Vec<String> {
    let close_within = Duration::from_secs(15);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let len = rng.random_range(1..4096);
    let mut random: Vec<u8> = (0..len).map(|_| rng.random()).collect();
    let binary = seed % 2 == 0;
    if binary {
        random[0] = 0; // a frame's first byte: binary mode
    } else if random[0] == 0 {
        random[0] = b'x'; // text mode
    }
    let whole = request_frame(
        1,
        "fibonacci_generator.calculate",
        vec![10, 0, 0, 0, 0, 0, 0, 0],
    );
    let over = u32::try_from(DEFAULT_MAX_FRAME + 1).expect("the limit fits a prefix");
    let at = u32::try_from(DEFAULT_MAX_FRAME).expect("the limit fits a prefix");
    let mut at_the_limit = at.to_be_bytes().to_vec();
    at_the_limit.extend_from_slice(&[1; 1024]);
    // (name, says hello first, bytes, half-closes after them, what the error must say)
    let cases: Vec<(&str, bool, Vec<u8>, bool, &str)> = vec![
        ("random bytes", false, random, true, ""),
        (
            "half a request",
            true,
            whole[..whole.len() / 2].to_vec(),
            true,
            "closed inside a frame",
        ),
        (
            "a length prefix alone",
            true,
            whole[..4].to_vec(),
            true,
            "closed inside a frame",
        ),
        (
            "half a length prefix",
            true,
            whole[..2].to_vec(),
            true,
            "closed inside a frame",
        ),
        (
            "a frame at the limit, cut short",
            true,
            at_the_limit,
            true,
            "closed inside a frame",
        ),
        (
            "a 4 GiB length prefix",
            true,
            vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
            false,
            "exceeds the limit",
        ),
        (
            "one byte over the limit",
            true,
            [&over.to_be_bytes()[..], &[1, 0, 0, 0]].concat(),
            false,
            "exceeds the limit",
        ),
    ];
    let mut checks = tokio::task::JoinSet::new();
    for (name, hello, bytes, half_close, says) in cases {
        checks.spawn(async move {
            let connected = match hello {
                true => handshake(port).await,
                false => TcpStream::connect(("127.0.0.1", port)).await,
            };
            let mut stream = connected.map_err(|err| format!("{name}: connect: {err}"))?;
            // The consumer may close before taking every byte: that is not a failure.
            let _ = stream.write_all(&bytes).await;
            if half_close {
                let _ = stream.shutdown().await;
            }
            let answer = read_to_close(&mut stream, close_within)
                .await
                .ok_or_else(|| format!("{name}: the connection stayed open"))?;
            if !hello && !binary {
                return match answer.starts_with(b"ERROR ") {
                    true => Ok(()),
                    false => Err(format!(
                        "{name}: text answer {:?}",
                        String::from_utf8_lossy(&answer)
                    )),
                };
            }
            match protocol_error(&answer) {
                Some(message) if message.contains(says) => Ok(()),
                Some(message) => Err(format!("{name}: protocol error {message:?}")),
                None => Err(format!("{name}: no protocol error in {answer:?}")),
            }
        });
    }
    let mut failures = Vec::new();
    while let Some(checked) = checks.join_next().await {
        if let Err(failure) = checked.expect("a check") {
            failures.push(failure);
        }
    }
    failures
}

#[test]
fn hostile_clients_cost_a_tcp_consumer_only_their_own_connections() {
    let needed = (SILENT + HANDSHAKEN + 64) as u64;
    let limit = open_files_limit();
    assert!(
        limit >= needed,
        "this test holds {needed} sockets; the open-file limit is {limit} (raise `ulimit -n`)"
    );
    let consumer = Consumer::start(&["--transport", "tcp", "--no-model"]);
    let port = consumer.port;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let limits = limits();
    let drop_within = limits.write_timeout + Duration::from_secs(90);
    let baseline = consumer.memory("VmRSS").expect("the consumer runs");

    let report = runtime.block_on(async {
        // The well-behaved client, from the start to the end.
        let calls = Arc::new(Calls::default());
        let stop = Arc::new(AtomicBool::new(false));
        let good = tokio::spawn(well_behaved(port, calls.clone(), stop.clone()));
        while calls.ok.load(Ordering::Relaxed) == 0 {
            assert!(
                calls.lock_failures().is_empty(),
                "{:?}",
                calls.lock_failures()
            );
            sleep(Duration::from_millis(10)).await;
        }

        // 500 idle connections.
        let mut silent = Vec::new();
        let mut handshaken = Vec::new();
        for _ in 0..SILENT {
            let stream = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            silent.push(stream);
            handshaken.push(handshake(port).await.expect("handshake"));
        }

        // The hostile rounds, until told to stop.
        let rounds = tokio::spawn({
            let stop = stop.clone();
            async move {
                let (mut done, mut failures) = (0u64, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    failures.extend(hostile_round(port, done).await);
                    done += 1;
                    // A breath between rounds: thousands of connections a second would only
                    // measure how fast this machine recycles its ephemeral ports.
                    sleep(Duration::from_millis(50)).await;
                }
                (done, failures)
            }
        });

        // The slow reader and the one that never reads.
        let slow = tokio::spawn(pipeline(
            port,
            SLOW_BUDGET,
            |id| {
                let args = to_bincode(&(SLOW_N,)).expect("args");
                request_frame(id, "fibonacci_generator.calculate", args)
            },
            Some((SLOW_BYTES, SLOW_PACE)),
        ));
        let name = format!("nobody.{}", "x".repeat(NAME_LEN));
        let deaf = tokio::spawn(pipeline(
            port,
            DEAF_BUDGET,
            move |id| request_frame(id, &name, Vec::new()),
            None,
        ));
        // Each is dropped once a write to it has been blocked for the write timeout; `None`
        // if it is not.
        let slow = ended(slow, drop_within).await;
        let deaf = ended(deaf, drop_within).await;

        // Long past the handshake timeout now: every silent connection was dropped.
        let mut silent_closed = 0;
        for stream in &mut silent {
            let within = limits.handshake_timeout + Duration::from_secs(10);
            if read_to_close(stream, within)
                .await
                .is_some_and(|bytes| bytes.is_empty())
            {
                silent_closed += 1;
            }
        }
        // And every handshaken one is still open: nothing to read, no end of stream.
        let mut held = 0;
        for stream in &mut handshaken {
            let mut byte = [0u8; 1];
            if timeout(Duration::from_millis(20), stream.read(&mut byte))
                .await
                .is_err()
            {
                held += 1;
            }
        }

        stop.store(true, Ordering::Relaxed);
        good.await.expect("the well-behaved client");
        let (rounds, round_failures) = rounds.await.expect("the hostile rounds");
        let ok = calls.ok.load(Ordering::Relaxed);
        let failures = calls.lock_failures().clone();
        (
            slow,
            deaf,
            silent_closed,
            held,
            rounds,
            round_failures,
            ok,
            failures,
        )
    });
    let (slow, deaf, silent_closed, held, rounds, round_failures, ok, failures) = report;

    let peak = consumer.memory("VmHWM").expect("the consumer runs");
    let mut consumer = consumer;
    assert!(
        consumer
            .child
            .try_wait()
            .expect("the consumer's status")
            .is_none(),
        "the consumer died"
    );
    let summary = |client: &Option<Pipelined>| match client {
        Some(c) => format!("{} requests written, {} reply bytes read", c.sent, c.read),
        None => "never dropped".to_string(),
    };
    eprintln!(
        "peak RSS: {:.1} MiB (at start {:.1} MiB), {held} handshaken connections held, \
         {silent_closed} silent ones dropped, {ok} calls ok, {rounds} hostile rounds; \
         slow reader: {}; non-reader: {}",
        mib(peak),
        mib(baseline),
        summary(&slow),
        summary(&deaf),
    );

    // The bound. What the consumer may hold by design, over what it held at start:
    // - 500 idle connections: a task, a socket and two 8 KiB codec buffers each; 32 KiB is
    //   generous: 16 MiB.
    // - the slow reader: at most `max_in_flight` (1024) finished replies of 8,678 bytes
    //   waiting to be written: 8.5 MiB.
    // - the non-reader: at most 1024 replies of 64 KiB (64 MiB); in practice one or two, as
    //   its replies are ready at once and the first blocked write stops the reading.
    // - the hostile rounds: a few KiB each, and a 16 MiB buffer reserved but never touched
    //   for the frame at the limit.
    // About 90 MiB; with 32 MiB for the allocator's slack, 120 MiB. Buffering without bound
    // would instead hold the non-reader's 1 GiB of replies, or the slow reader's 2,000,000 of
    // 8.7 KB each.
    let max_in_flight = limits.max_in_flight as u64;
    let by_design = (16 << 20) + max_in_flight * (SLOW_REPLY + NAME_LEN as u64);
    let bound = baseline + by_design + (32 << 20);
    assert!(
        peak < bound,
        "peak RSS {:.1} MiB over the bound of {:.1} MiB",
        mib(peak),
        mib(bound)
    );

    assert!(
        failures.is_empty(),
        "well-behaved calls failed: {failures:?}"
    );
    assert!(ok > 0);
    assert!(round_failures.is_empty(), "{round_failures:#?}");
    assert!(rounds > 0);
    assert_eq!(silent_closed, SILENT, "silent connections dropped");
    assert_eq!(held, HANDSHAKEN, "handshaken connections held");
    for (who, client, budget) in [
        ("slow reader", &slow, SLOW_BUDGET),
        ("non-reader", &deaf, DEAF_BUDGET),
    ] {
        let client = client
            .as_ref()
            .unwrap_or_else(|| panic!("the {who} was not dropped within {drop_within:?}"));
        // Held back: the consumer stopped reading its requests long before its budget ...
        assert!(
            client.sent < budget,
            "the consumer read all of the {who}'s requests"
        );
        // ... then dropped it: its blocked write failed, and the connection is closed.
        let kind = client.write_error.as_ref().map(io::Error::kind);
        assert!(
            matches!(
                kind,
                Some(io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
            ),
            "{who}: {client:?}"
        );
        assert!(client.closed, "{who}: the connection is still open");
    }
    assert!(
        slow.is_some_and(|slow| slow.read > 0),
        "the slow reader read nothing"
    );
}
