//! Echo benchmark: calls/s and p50/p99 latency of a ~30-byte echo through the TCP transport,
//! one call at a time and 64 in flight on one connection, against the floor: a plain tokio
//! length-delimited echo server and client with no RPC logic, measured in the same run.
//!
//! Each case runs with both sides on current-thread runtimes, on multi-threaded runtimes (2
//! workers), and mixed, to choose the runtime settings on evidence. Then it measures the
//! resident memory of a small consumer process (this binary re-run as one), and the cost of
//! TLS: two consumer processes of default configuration, one plain and one with TLS
//! (certificates made at run time), called from this process at 64 in flight and one at a
//! time, in interleaved rounds.
//!
//! `cargo bench -p transport-tcp`; `ECHO_SECS` (default 0.6) sets the time per case and round,
//! `ECHO_ROUNDS` (default 5) the rounds, `ECHO_ONLY=current` or `ECHO_ONLY=multi` one flavour,
//! `ECHO_CASE=<part of a label>` some cases, `ECHO_ONLY=tls` the TLS comparison alone.

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rpc_core::{Client, Registry};
use test_support::pki::Ca;
use test_support::{procfs, Latencies};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_util::codec::{Framed, FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use transport_tcp::{ClientTls, ServerTls, TcpServerConfig, TcpTransport, TcpTransportConfig};

const PAYLOAD: &str = "the quick brown fox jumps over";
const IN_FLIGHT: usize = 64;

/// The procedures measured.
pub struct Echo;

#[rpc_core::handler]
impl Echo {
    /// Returns its argument, on a blocking thread.
    pub fn echo(text: String) -> String {
        text
    }

    /// Returns its argument, on the runtime.
    pub async fn echo_async(text: String) -> String {
        text
    }
}

fn registry() -> Registry {
    let mut registry = Registry::new().with_workers(2);
    registry.register(Echo);
    registry
}

#[derive(Clone, Copy, PartialEq)]
enum Flavor {
    Multi,
    Current,
}

impl Flavor {
    fn runtime(self) -> Runtime {
        match self {
            Flavor::Multi => test_support::runtime(2),
            Flavor::Current => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Flavor::Multi => "multi-thread (2)",
            Flavor::Current => "current-thread",
        }
    }
}

/// Latencies of one case, and how long it ran.
struct Sample {
    latencies: Latencies,
    elapsed: Duration,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.latencies.count() as f64 / self.elapsed.as_secs_f64()
    }

    fn row(&self, what: &str, runtimes: &str) -> (String, f64, Duration) {
        let rate = self.rate();
        let (p50, p99) = (self.latencies.p50(), self.latencies.p99());
        let line = format!(
            "| {what} | {runtimes} | {rate:.0} | {:.1} | {:.1} |",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
        (line, rate, p50)
    }
}

/// Runs `server` on a runtime of its own in a thread, until the returned token fires.
fn spawn_server<F, Fut>(
    flavor: Flavor,
    server: F,
) -> (SocketAddr, CancellationToken, std::thread::JoinHandle<()>)
where
    F: FnOnce(TcpListener, CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let addr = listener.local_addr().expect("address");
    let token = CancellationToken::new();
    let stop = token.clone();
    let thread = std::thread::spawn(move || {
        flavor.runtime().block_on(async move {
            let listener = TcpListener::from_std(listener).expect("listener");
            server(listener, stop).await;
        });
    });
    (addr, token, thread)
}

/// The floor's server: echoes every frame back, no decoding.
async fn floor_server(listener: TcpListener, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted.expect("accept"),
        };
        stream.set_nodelay(true).expect("nodelay");
        tokio::spawn(async move {
            let (read, write) = stream.into_split();
            let mut frames = FramedRead::new(read, LengthDelimitedCodec::new());
            let mut sink = FramedWrite::new(write, LengthDelimitedCodec::new());
            while let Some(Ok(frame)) = frames.next().await {
                if sink.feed(frame.freeze()).await.is_err() {
                    return;
                }
                // Flush once no more frames are already buffered: pipelined frames batch.
                if frames.read_buffer().is_empty()
                    && SinkExt::<Bytes>::flush(&mut sink).await.is_err()
                {
                    return;
                }
            }
        });
    }
}

async fn floor_sequential(addr: SocketAddr, secs: Duration) -> Sample {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
    let payload = Bytes::from_static(PAYLOAD.as_bytes());
    let started = Instant::now();
    let mut latencies = Latencies::new();
    while started.elapsed() < secs {
        let t = Instant::now();
        framed.send(payload.clone()).await.expect("send");
        let echo = framed.next().await.expect("echo").expect("frame");
        assert_eq!(echo.len(), PAYLOAD.len());
        latencies.record(t.elapsed());
    }
    Sample {
        latencies,
        elapsed: started.elapsed(),
    }
}

/// 64 frames in flight; `batched` writes every frame that can go at once with one flush (as
/// the RPC client does), otherwise each frame is flushed on its own (`SinkExt::send`).
async fn floor_pipelined(addr: SocketAddr, secs: Duration, batched: bool) -> Sample {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (read, write) = stream.into_split();
    let mut frames = FramedRead::new(read, LengthDelimitedCodec::new());
    let mut sink = FramedWrite::new(write, LengthDelimitedCodec::new());
    let payload = Bytes::from_static(PAYLOAD.as_bytes());
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::channel::<Instant>(IN_FLIGHT);
    let writer = tokio::spawn(async move {
        // The channel's capacity keeps IN_FLIGHT frames outstanding; frames that can go at
        // once go in one write.
        while let Ok(permit) = sent_tx.reserve().await {
            permit.send(Instant::now());
            if sink.feed(payload.clone()).await.is_err() {
                return;
            }
            while let Some(permit) = sent_tx.try_reserve().ok().filter(|_| batched) {
                permit.send(Instant::now());
                if sink.feed(payload.clone()).await.is_err() {
                    return;
                }
            }
            if SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut latencies = Latencies::new();
    while started.elapsed() < secs {
        let echo = frames.next().await.expect("echo").expect("frame");
        let sent = sent_rx.recv().await.expect("send time");
        assert_eq!(echo.len(), PAYLOAD.len());
        latencies.record(sent.elapsed());
    }
    let elapsed = started.elapsed();
    writer.abort();
    Sample { latencies, elapsed }
}

async fn rpc_calls(client: Client, method: &'static str, tasks: usize, secs: Duration) -> Sample {
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut latencies = Latencies::new();
                while started.elapsed() < secs {
                    let t = Instant::now();
                    let echo: String = client.call(method, &(PAYLOAD,)).await.expect("echo");
                    assert_eq!(echo.len(), PAYLOAD.len());
                    latencies.record(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Latencies::new();
    for worker in workers {
        latencies.merge(&worker.await.expect("task"));
    }
    Sample {
        latencies,
        elapsed: started.elapsed(),
    }
}

fn rpc_pool(addr: SocketAddr) -> TcpTransport {
    TcpTransport::new([addr.to_string()], pool_config()).expect("pool")
}

fn pool_config() -> TcpTransportConfig {
    let mut config = TcpTransportConfig::default();
    // Let 64 calls be in flight on the one connection, whatever the worker count.
    config.queued_per_consumer = IN_FLIGHT;
    config
}

/// One measured case: what it is, and the best of its rounds.
struct Case {
    label: String,
    best: Option<Sample>,
}

impl Case {
    fn keep(&mut self, sample: Sample) {
        if self.best.as_ref().is_none_or(|b| sample.rate() > b.rate()) {
            self.best = Some(sample);
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::var_os("ECHO_CONSUMER").is_some() {
        return consumer_process();
    }
    let secs = Duration::from_secs_f64(env_or("ECHO_SECS", 0.6));
    let rounds: usize = env_or("ECHO_ROUNDS", 5);
    let only: String = env_or("ECHO_ONLY", String::new());
    let only_case: String = env_or("ECHO_CASE", String::new());
    println!(
        "Best of {rounds} interleaved rounds of {:.1} s per case (the machine is shared: the best \
         round is the one least disturbed).\n",
        secs.as_secs_f64()
    );
    if only == "tls" {
        return measure_tls(secs, rounds);
    }
    println!("| case | runtimes (server and client) | calls/s | p50 µs | p99 µs |");
    println!("|---|---|---|---|---|");
    let mut summary = Vec::new();
    use Flavor::{Current, Multi};
    for (flavor, client_flavor) in [
        (Current, Current),
        (Multi, Multi),
        (Current, Multi),
        (Multi, Current),
    ] {
        let runtimes = match flavor == client_flavor {
            true => flavor.name().to_string(),
            false => format!("server {}, client {}", flavor.name(), client_flavor.name()),
        };
        if !only.is_empty() && !runtimes.starts_with(&only) {
            continue;
        }
        let (floor_addr, floor_stop, floor_thread) = spawn_server(flavor, floor_server);
        let (rpc_addr, rpc_stop, rpc_thread) = spawn_server(flavor, |listener, stop| async move {
            let config = TcpServerConfig::default();
            transport_tcp::serve(listener, Arc::new(registry()), config, stop).await
        });
        let client = client_flavor.runtime();
        let rpc = client.block_on(async {
            let rpc = Client::new(rpc_pool(rpc_addr));
            // Warm up: connect and fill the buffers.
            rpc_calls(rpc.clone(), "echo.echo", 1, Duration::from_millis(200)).await;
            rpc
        });
        let labels = [
            "floor, 1 at a time",
            "rpc sync echo, 1 at a time",
            "rpc async echo, 1 at a time",
            "floor, 64 in flight",
            "rpc sync echo, 64 in flight",
            "rpc async echo, 64 in flight",
            "floor (a flush per frame), 64 in flight",
        ];
        let mut cases: Vec<Case> = labels
            .iter()
            .map(|l| Case {
                label: l.to_string(),
                best: None,
            })
            .collect();
        for _ in 0..rounds {
            for (index, case) in cases.iter_mut().enumerate() {
                if !case.label.contains(&only_case) {
                    continue;
                }
                let tasks = if index < 3 { 1 } else { IN_FLIGHT };
                let method = if index % 3 == 1 {
                    "echo.echo"
                } else {
                    "echo.echo_async"
                };
                let sample = match index {
                    0 => client.block_on(floor_sequential(floor_addr, secs)),
                    3 => client.block_on(floor_pipelined(floor_addr, secs, true)),
                    6 => client.block_on(floor_pipelined(floor_addr, secs, false)),
                    _ => client.block_on(rpc_calls(rpc.clone(), method, tasks, secs)),
                };
                case.keep(sample);
            }
        }
        let mut rows = Vec::new();
        for case in &cases {
            if let Some(sample) = case.best.as_ref() {
                let (line, rate, p50) = sample.row(&case.label, &runtimes);
                println!("{line}");
                rows.push((rate, p50));
            }
        }
        if rows.len() == labels.len() {
            let (floor_p50, batched, flushed) = (rows[0].1, rows[3].0, rows[6].0);
            for (label, seq, pipe) in [("sync echo", 1, 4), ("async echo", 2, 5)] {
                summary.push(format!(
                    "{} / {label}: 64 in flight = {:.0}% of the batched floor's calls/s ({:.0}% of \
                     the flush-per-frame floor's); 1 at a time p50 = {:.2}x the floor's",
                    runtimes,
                    100.0 * rows[pipe].0 / batched,
                    100.0 * rows[pipe].0 / flushed,
                    rows[seq].1.as_secs_f64() / floor_p50.as_secs_f64()
                ));
            }
        }
        drop(rpc);
        // Let the pool's tasks see the pool dropped before the runtime goes.
        client.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
        floor_stop.cancel();
        rpc_stop.cancel();
        let _ = floor_thread.join();
        let _ = rpc_thread.join();
    }
    println!();
    for line in summary {
        println!("{line}");
    }
    println!();
    if only.is_empty() && only_case.is_empty() {
        measure_consumer_memory();
        measure_tls(secs, rounds);
    }
}

/// Runs a consumer of [`Echo`] on a current-thread runtime (`ECHO_CONSUMER=multi`: a
/// multi-threaded one), with TLS when `ECHO_TLS_CERT` and `ECHO_TLS_KEY` name PEM files,
/// prints its port, and serves until its standard input closes.
fn consumer_process() {
    let flavor = match std::env::var("ECHO_CONSUMER").as_deref() {
        Ok("multi") => Flavor::Multi,
        _ => Flavor::Current,
    };
    let mut config = TcpServerConfig::default();
    if let (Some(cert), Some(key)) = (
        std::env::var_os("ECHO_TLS_CERT"),
        std::env::var_os("ECHO_TLS_KEY"),
    ) {
        config.tls = Some(ServerTls::from_pem_files(cert, key).expect("the consumer's TLS"));
    }
    flavor.runtime().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("{}", listener.local_addr().expect("address").port());
        let stop = CancellationToken::new();
        let server = tokio::spawn(transport_tcp::serve(
            listener,
            Arc::new(registry()),
            config,
            stop.clone(),
        ));
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await;
        stop.cancel();
        let _ = server.await;
    });
}

fn vm_rss_mib(pid: u32) -> f64 {
    procfs::resident_memory(pid).unwrap_or(0) as f64 / (1024.0 * 1024.0)
}

/// A consumer process: this binary re-run with `ECHO_CONSUMER` set; it stops when its
/// standard input closes.
struct ConsumerProcess {
    child: std::process::Child,
    addr: SocketAddr,
}

impl ConsumerProcess {
    /// Starts one on a `flavor` runtime (`current` or `multi`) with the environment `env`.
    fn start(flavor: &str, env: &[(&str, &std::path::Path)]) -> Self {
        let exe = std::env::current_exe().expect("this binary");
        let mut command = Command::new(exe);
        command.env("ECHO_CONSUMER", flavor);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("consumer process");
        let mut port = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut port).expect("port");
        let port: u16 = port.trim().parse().expect("a port");
        let addr = ([127, 0, 0, 1], port).into();
        Self { child, addr }
    }

    /// Closes its standard input and waits for it to exit.
    fn stop(mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = self.child.wait();
    }
}

/// TLS against plain TCP: a consumer process of each (default configuration, 2 workers),
/// called from this process (current-thread runtime) at 64 in flight and one at a time, in
/// interleaved rounds; the best round of each, and the ratios.
fn measure_tls(secs: Duration, rounds: usize) {
    let dir = std::env::temp_dir().join(format!("rpc-echo-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let ca = Ca::new("echo bench CA");
    let consumer = ca.issue("consumer");
    let (ca, cert, key) = (ca.pem(), consumer.cert, consumer.key);
    let (ca_file, cert_file, key_file) = (dir.join("ca.crt"), dir.join("c.crt"), dir.join("c.key"));
    for (path, pem) in [(&ca_file, &ca), (&cert_file, &cert), (&key_file, &key)] {
        std::fs::write(path, pem).expect("a PEM file");
    }
    let plain = ConsumerProcess::start("current", &[]);
    let tls = ConsumerProcess::start(
        "current",
        &[("ECHO_TLS_CERT", &cert_file), ("ECHO_TLS_KEY", &key_file)],
    );
    let runtime = Flavor::Current.runtime();
    let mut tls_config = pool_config();
    tls_config.tls = Some(ClientTls::from_ca_file(&ca_file).expect("the CA"));
    let clients = [
        ("plain TCP", Client::new(rpc_pool(plain.addr))),
        (
            "TLS",
            Client::new(TcpTransport::new([tls.addr.to_string()], tls_config).expect("pool")),
        ),
    ];
    let mut cases: Vec<(String, &Client, usize, Case)> = Vec::new();
    for tasks in [IN_FLIGHT, 1] {
        for (name, client) in &clients {
            let label = match tasks {
                1 => format!("{name}, 1 at a time"),
                _ => format!("{name}, 64 in flight"),
            };
            let case = Case {
                label: label.clone(),
                best: None,
            };
            cases.push((label, client, tasks, case));
        }
    }
    runtime.block_on(async {
        for (_, client) in &clients {
            rpc_calls(
                (*client).clone(),
                "echo.echo",
                1,
                Duration::from_millis(200),
            )
            .await;
        }
        for _ in 0..rounds {
            for (_, client, tasks, case) in cases.iter_mut() {
                let client = (*client).clone();
                case.keep(rpc_calls(client, "echo.echo", *tasks, secs).await);
            }
        }
    });
    println!("TLS against plain TCP, each consumer a process of its own (sync echo):\n");
    println!("| case | runtimes (server and client) | calls/s | p50 µs | p99 µs |");
    println!("|---|---|---|---|---|");
    let mut rates = Vec::new();
    for (label, _, _, case) in &cases {
        if let Some(sample) = case.best.as_ref() {
            let (line, rate, p50) = sample.row(label, "current-thread");
            println!("{line}");
            rates.push((rate, p50));
        }
    }
    if let [plain64, tls64, plain1, tls1] = rates[..] {
        println!(
            "\nTLS at 64 in flight = {:.0}% of plain TCP's calls/s; 1 at a time: {:.0}% of its \
             calls/s, p50 {:.2}x",
            100.0 * tls64.0 / plain64.0,
            100.0 * tls1.0 / plain1.0,
            tls1.1.as_secs_f64() / plain1.1.as_secs_f64()
        );
    }
    drop(clients);
    drop(runtime);
    plain.stop();
    tls.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The resident memory of a consumer process: idle, then idle again after 20,000 calls.
fn measure_consumer_memory() {
    for flavor in ["current", "multi"] {
        let process = ConsumerProcess::start(flavor, &[]);
        std::thread::sleep(Duration::from_millis(300));
        let idle = vm_rss_mib(process.child.id());
        let addr = process.addr;
        let runtime = Flavor::Current.runtime();
        runtime.block_on(async {
            let client = Client::new(rpc_pool(addr));
            let calls = (0..IN_FLIGHT).map(|_| {
                let client = client.clone();
                tokio::spawn(async move {
                    for _ in 0..(20_000 / IN_FLIGHT) {
                        let _: String = client.call("echo.echo", &(PAYLOAD,)).await.expect("echo");
                    }
                })
            });
            futures::future::join_all(calls).await;
        });
        drop(runtime);
        std::thread::sleep(Duration::from_millis(300));
        let after = vm_rss_mib(process.child.id());
        println!(
            "consumer VmRSS ({flavor} runtime): idle {idle:.1} MiB, idle after 20,000 calls \
             {after:.1} MiB"
        );
        process.stop();
    }
}
