//! Echo benchmark: this project's TCP transport against tarpc 0.38 and a raw
//! length-delimited floor, each server end in a process of its own (this binary re-run with
//! `ECHO_SERVE`), the calling ends in this process, all measured in one run.
//!
//! - **this project**: `transport_tcp::serve` with the default `TcpServerConfig` and the
//!   registry of the apps' consumer by default (one worker); an `async fn` echo and a sync
//!   one of a 30-byte string; the caller is `rpc_core::Client` over a `TcpTransport` with its
//!   default configuration (its per-procedure pipeline lets up to workers + 64 cheap calls
//!   onto the connection); a row labelled *tuned* sets `queued_per_consumer = 64`, the
//!   pipeline at its ceiling from the first call.
//! - **tarpc 0.38**: its serde transport with bincode over TCP, a task per request, as its
//!   examples do (Nagle off on both ends, as ours).
//! - **floor**: tokio-util's `LengthDelimitedCodec`, no RPC logic; both ends feed every frame
//!   they already have and flush once, when nothing more is ready.
//!
//! Both runtime flavours, the same on both ends: current-thread, and the default
//! multi-thread runtime `#[tokio::main]` gives. 64 calls in flight on one connection
//! (calls/s), and one at a time (p50, p99), in interleaved rounds so that noise from the
//! shared machine hits every peer alike; each case keeps its best round, with the CPU time
//! each end spent per call in it (from `/proc`: less sensitive to a loaded machine than the
//! rates, though a disturbed round batches less and costs more per call). Then the resident
//! memory of a consumer process and the cost of TLS (two consumer processes, one plain, one
//! with TLS, called at 64 in flight and one at a time).
//!
//! `cargo bench -p transport-tcp --bench echo`; `ECHO_SECS` (default 0.6) sets the time per
//! case and round, `ECHO_ROUNDS` (default 5) the rounds, `ECHO_ONLY=current` or
//! `ECHO_ONLY=multi` one flavour, `ECHO_ONLY=tls` the TLS comparison alone,
//! `ECHO_CASE=<label>|<label>...` some cases (for profiling).

use std::time::Duration;

use rpc_core::Client;
use test_support::pki::Ca;
use test_support::{procfs, Cases};
use tokio::runtime::Runtime;
use transport_tcp::{ClientTls, TcpTransportConfig};

use caller::Sample;
use process::ServerProcess;
use server::Peer;

mod caller;
mod process;
mod server;

/// The string echoed: 30 bytes.
const PAYLOAD: &str = "the quick brown fox jumps over";
/// Calls in flight in the throughput rows.
const IN_FLIGHT: usize = 64;

/// tarpc's side of the echo.
#[tarpc::service]
pub trait EchoService {
    /// Returns its argument.
    async fn echo(text: String) -> String;
}

/// The runtime flavour of both ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Flavor {
    /// `new_current_thread()`.
    Current,
    /// The default multi-thread runtime (a worker per core), as `#[tokio::main]` gives.
    Multi,
}

impl Flavor {
    fn runtime(self) -> Runtime {
        match self {
            Flavor::Multi => tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            Flavor::Current => test_support::current_thread_runtime(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Flavor::Multi => "multi-thread (default)",
            Flavor::Current => "current-thread",
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Flavor::Multi => "multi",
            Flavor::Current => "current",
        }
    }

    fn parse(arg: &str) -> Self {
        match arg {
            "multi" => Flavor::Multi,
            _ => Flavor::Current,
        }
    }
}

/// One measured case: what it is, and the best of its rounds.
struct Case {
    label: &'static str,
    best: Option<Sample>,
    /// CPU time per call in the best round, µs: the calling process's and the server's.
    cpu: (f64, f64),
}

impl Case {
    fn new(label: &'static str) -> Self {
        Self {
            label,
            best: None,
            cpu: (f64::NAN, f64::NAN),
        }
    }

    fn keep(&mut self, sample: Sample) {
        self.keep_with_cpu(sample, (f64::NAN, f64::NAN));
    }

    fn keep_with_cpu(&mut self, sample: Sample, cpu: (f64, f64)) {
        if self.best.as_ref().is_none_or(|b| sample.rate() > b.rate()) {
            self.best = Some(sample);
            self.cpu = cpu;
        }
    }

    fn rate(&self) -> f64 {
        self.best.as_ref().map_or(f64::NAN, Sample::rate)
    }

    fn p50_us(&self) -> f64 {
        self.best
            .as_ref()
            .map_or(f64::NAN, |s| s.latencies.p50().as_secs_f64() * 1e6)
    }

    fn p99_us(&self) -> f64 {
        self.best
            .as_ref()
            .map_or(f64::NAN, |s| s.latencies.p99().as_secs_f64() * 1e6)
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if let Ok(peer) = std::env::var("ECHO_SERVE") {
        return server::serve_process(&peer);
    }
    let secs = Duration::from_secs_f64(env_or("ECHO_SECS", 0.6));
    let rounds: usize = env_or("ECHO_ROUNDS", 5);
    let only: String = env_or("ECHO_ONLY", String::new());
    let cases = Cases::from_env("ECHO_CASE");
    println!(
        "Best of {rounds} interleaved rounds of {:.1} s per case; each server end a process of \
         its own.\n",
        secs.as_secs_f64()
    );
    if only == "tls" {
        return measure_tls(secs, rounds);
    }
    for flavor in [Flavor::Current, Flavor::Multi] {
        if only.is_empty() || flavor.arg() == only {
            measure_flavor(flavor, secs, rounds, &cases);
        }
    }
    if only.is_empty() && cases.all() {
        measure_consumer_memory();
        println!();
        measure_tls(secs, rounds);
    }
}

/// The cases of one flavour, in the order of the table.
const LABELS: [&str; 9] = [
    "floor",
    "tarpc",
    "rpc, async echo",
    "rpc, sync echo",
    "rpc, async echo, tuned pool (queued_per_consumer = 64)",
    "floor, 1 at a time",
    "tarpc, 1 at a time",
    "rpc, async echo, 1 at a time",
    "rpc, sync echo, 1 at a time",
];

/// The three peers' servers, each in its own process on `flavor`, called from a `flavor`
/// runtime here: the table and the ratios.
fn measure_flavor(flavor: Flavor, secs: Duration, rounds: usize, selected: &Cases) {
    let floor = ServerProcess::start(Peer::Floor, flavor, &[]);
    let tarpc = ServerProcess::start(Peer::Tarpc, flavor, &[]);
    let rpc = ServerProcess::start(Peer::Rpc, flavor, &[]);
    let runtime = flavor.runtime();
    let (floor_addr, rpc_addr) = (floor.addr, rpc.addr);
    let (tarpc_client, rpc_client, rpc_tuned) = runtime.block_on(async {
        let tarpc_client = caller::tarpc_client(tarpc.addr).await;
        let rpc_client = caller::rpc_client(rpc_addr, TcpTransportConfig::default());
        let rpc_tuned = caller::rpc_client(rpc_addr, caller::tuned_pool_config(IN_FLIGHT));
        // Warm up: connect and fill the buffers.
        let warm = Duration::from_millis(200);
        caller::tarpc(tarpc_client.clone(), IN_FLIGHT, warm).await;
        caller::rpc(rpc_client.clone(), "echo.echo", IN_FLIGHT, warm).await;
        caller::rpc(rpc_client.clone(), "echo.echo_async", IN_FLIGHT, warm).await;
        caller::rpc(rpc_tuned.clone(), "echo.echo", IN_FLIGHT, warm).await;
        caller::floor_pipelined(floor_addr, IN_FLIGHT, warm).await;
        (tarpc_client, rpc_client, rpc_tuned)
    });
    let mut cases: Vec<Case> = LABELS.iter().map(|l| Case::new(l)).collect();
    for _ in 0..rounds {
        for (index, case) in cases.iter_mut().enumerate() {
            if !selected.wants(case.label) {
                continue;
            }
            let tasks = if index < 5 { IN_FLIGHT } else { 1 };
            let server = match index {
                0 | 5 => &floor,
                1 | 6 => &tarpc,
                _ => &rpc,
            };
            let cpu_before = (own_cpu(), server.cpu());
            let sample = runtime.block_on(async {
                match index {
                    0 => caller::floor_pipelined(floor_addr, IN_FLIGHT, secs).await,
                    5 => caller::floor_sequential(floor_addr, secs).await,
                    1 | 6 => caller::tarpc(tarpc_client.clone(), tasks, secs).await,
                    2 | 7 => caller::rpc(rpc_client.clone(), "echo.echo_async", tasks, secs).await,
                    3 | 8 => caller::rpc(rpc_client.clone(), "echo.echo", tasks, secs).await,
                    _ => caller::rpc(rpc_tuned.clone(), "echo.echo_async", tasks, secs).await,
                }
            });
            let calls = sample.latencies.len().max(1) as f64;
            let per_call = |before: Duration, after: Duration| {
                after.saturating_sub(before).as_secs_f64() * 1e6 / calls
            };
            let cpu = (
                per_call(cpu_before.0, own_cpu()),
                per_call(cpu_before.1, server.cpu()),
            );
            case.keep_with_cpu(sample, cpu);
        }
    }
    print_table(flavor, &cases, selected);
    // Let the clients' tasks see their handles dropped before the runtime goes.
    runtime.block_on(async move {
        drop((tarpc_client, rpc_client, rpc_tuned));
        tokio::time::sleep(Duration::from_millis(50)).await;
    });
    drop(runtime);
    for process in [floor, tarpc, rpc] {
        process.stop();
    }
}

/// The flavor's two tables; a case the filter left out has no row (a ratio to a peer left
/// out reads NaN).
fn print_table(flavor: Flavor, cases: &[Case], selected: &Cases) {
    let (floor, tarpc) = (&cases[0], &cases[1]);
    let (floor1, tarpc1) = (&cases[5], &cases[6]);
    println!("{}, both ends:\n", flavor.name());
    println!(
        "| 64 in flight | calls/s | vs tarpc | vs floor | p50 µs | p99 µs | CPU µs/call, caller | CPU µs/call, server |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for case in cases[..5].iter().filter(|case| selected.wants(case.label)) {
        println!(
            "| {} | {:.0} | {:.2}x | {:.0}% | {:.0} | {:.0} | {:.2} | {:.2} |",
            case.label,
            case.rate(),
            case.rate() / tarpc.rate(),
            100.0 * case.rate() / floor.rate(),
            case.p50_us(),
            case.p99_us(),
            case.cpu.0,
            case.cpu.1
        );
    }
    println!();
    println!("| 1 at a time | calls/s | p50 µs | p99 µs | p50 vs floor | p50 vs tarpc |");
    println!("|---|---:|---:|---:|---:|---:|");
    for case in cases[5..].iter().filter(|case| selected.wants(case.label)) {
        println!(
            "| {} | {:.0} | {:.1} | {:.1} | {:.2}x | {:.2}x |",
            case.label,
            case.rate(),
            case.p50_us(),
            case.p99_us(),
            case.p50_us() / floor1.p50_us(),
            case.p50_us() / tarpc1.p50_us()
        );
    }
    println!();
}

/// TLS against plain TCP: a consumer process of each (default configuration), called from
/// this process (current-thread runtime) at 64 in flight and one at a time, in interleaved
/// rounds; the best round of each, and the ratios.
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
    let plain = ServerProcess::start(Peer::Rpc, Flavor::Current, &[]);
    let tls = ServerProcess::start(
        Peer::Rpc,
        Flavor::Current,
        &[("ECHO_TLS_CERT", &cert_file), ("ECHO_TLS_KEY", &key_file)],
    );
    let runtime = Flavor::Current.runtime();
    let mut tls_config = TcpTransportConfig::default();
    tls_config.tls = Some(ClientTls::from_ca_file(&ca_file).expect("the CA"));
    let (plain_client, tls_client) = runtime.block_on(async {
        (
            caller::rpc_client(plain.addr, TcpTransportConfig::default()),
            caller::rpc_client(tls.addr, tls_config),
        )
    });
    let clients = [plain_client, tls_client];
    let labels = [
        "plain TCP, 64 in flight",
        "TLS, 64 in flight",
        "plain TCP, 1 at a time",
        "TLS, 1 at a time",
    ];
    let mut cases: Vec<Case> = labels.iter().map(|l| Case::new(l)).collect();
    runtime.block_on(async {
        for client in &clients {
            caller::rpc(client.clone(), "echo.echo", 1, Duration::from_millis(200)).await;
        }
        for _ in 0..rounds {
            for (index, case) in cases.iter_mut().enumerate() {
                let tasks = if index < 2 { IN_FLIGHT } else { 1 };
                let client = clients[index % 2].clone();
                case.keep(caller::rpc(client, "echo.echo", tasks, secs).await);
            }
        }
    });
    println!(
        "TLS against plain TCP, each consumer a process of its own (sync echo, current-thread):\n"
    );
    println!("| case | calls/s | p50 µs | p99 µs |");
    println!("|---|---:|---:|---:|");
    for case in &cases {
        println!(
            "| {} | {:.0} | {:.1} | {:.1} |",
            case.label,
            case.rate(),
            case.p50_us(),
            case.p99_us()
        );
    }
    let [plain64, tls64, plain1, tls1] = &cases[..] else {
        return;
    };
    println!(
        "\nTLS at 64 in flight = {:.0}% of plain TCP's calls/s; 1 at a time: {:.0}% of its \
         calls/s, p50 {:.2}x",
        100.0 * tls64.rate() / plain64.rate(),
        100.0 * tls1.rate() / plain1.rate(),
        tls1.p50_us() / plain1.p50_us()
    );
    runtime.block_on(async move {
        drop(clients);
        tokio::time::sleep(Duration::from_millis(50)).await;
    });
    drop(runtime);
    plain.stop();
    tls.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The resident memory of a consumer process: idle, then idle again after 20,000 calls.
fn measure_consumer_memory() {
    for flavor in [Flavor::Current, Flavor::Multi] {
        let process = ServerProcess::start(Peer::Rpc, flavor, &[]);
        std::thread::sleep(Duration::from_millis(300));
        let idle = vm_rss_mib(process.child.id());
        let addr = process.addr;
        let runtime = Flavor::Current.runtime();
        runtime.block_on(async {
            let client = caller::rpc_client(addr, TcpTransportConfig::default());
            let calls = (0..IN_FLIGHT).map(|_| {
                let client: Client = client.clone();
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
            "consumer VmRSS ({} runtime): idle {idle:.1} MiB, idle after 20,000 calls \
             {after:.1} MiB",
            flavor.name()
        );
        process.stop();
    }
}

/// The CPU time this process (the calling ends) has used so far.
fn own_cpu() -> Duration {
    procfs::process_cpu(std::process::id()).unwrap_or_default()
}

fn vm_rss_mib(pid: u32) -> f64 {
    procfs::resident_memory(pid).unwrap_or(0) as f64 / (1024.0 * 1024.0)
}
