//! Calls per second and latency of the AMQP transport against the floor: a minimal lapin
//! responder and caller with no RPC logic (no registry, no encoding, no confirms), measured in
//! the same run on the same broker and the same queue type, in both topologies (quorum, the
//! default: durable quorum queues and persistent requests, floor included; classic), for both
//! reply modes, with a synchronous procedure (run on a blocking thread by rpc-core's registry)
//! and an async one.
//!
//! Each end runs in its own process, as a producer and a consumer do: this binary starts itself
//! again as the consumer (`AMQP_BENCH_CONSUMER`), which serves both the floor's responder and
//! the rpc consumer on a current-thread runtime (the consumer app's), while this process calls
//! them on a two-thread runtime (`BENCH_CALLER_RUNTIME=current`: a current-thread one). CPU is
//! read from /proc for each process and the broker. The rpc consumer has the apps' defaults:
//! `Registry::new()` (one worker, as `consumer --workers`'s default) and `AmqpConfig`'s
//! prefetch pipeline.
//!
//! The third peer is aio-pika's JsonRPC (`benches/aio_pika_peer.py`, from the venv that
//! `scripts/python_venv.sh` makes): an echo consumer in a process of its own, called by an
//! aio-pika caller process with the same calls in flight, through a reply queue, on the same
//! queue type (its `register` given our quorum arguments).
//!
//! `cargo bench -p transport-amqp` (a RabbitMQ broker must answer: scripts/start_rabbitmq.sh).
//! `BENCH_CALLS` sets the number of calls per measurement (default 3000); each figure is the
//! median of 5 rounds, floor and rpc measurements alternating. `BENCH_TOPOLOGY=quorum` or
//! `classic` runs one topology, `BENCH_CASE=<label>|...` some measurements (for profiling;
//! e.g. `quorum, reply queue, 64 in flight: rpc, sync procedure`).

// The request queue as a foreign peer declares it, shared with the tests: the floor runs on
// the same queue type.
#[path = "../tests/support/peer_queue.rs"]
mod peer_queue;
#[path = "../tests/support/python_venv.rs"]
mod python_venv;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use rpc_core::{Client, Registry};
use test_support::{procfs, Cases, Latencies};
use tokio::sync::oneshot;
use transport_amqp::{AmqpConfig, AmqpServer, AmqpTransport, AmqpUrl, ReplyMode, Topology};

/// The environment variable that makes this binary the consumer process: `<name>,<topology>`.
const CONSUMER_ENV: &str = "AMQP_BENCH_CONSUMER";

/// RabbitMQ's pseudo-queue for direct reply-to.
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

const IN_FLIGHT: usize = 64;

fn aio_pika_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/aio_pika_peer.py")
}

/// aio-pika's JsonRPC echo consumer for `procedure` in `topology`, once it is ready; it stops
/// when its stdin closes.
fn start_aio_pika_consumer(
    python: &std::path::Path,
    procedure: &str,
    topology: Topology,
) -> std::process::Child {
    let mut child = std::process::Command::new(python)
        .arg(aio_pika_script())
        .args(["serve", procedure, topology.as_str()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the aio-pika consumer");
    let stdout = child.stdout.take().expect("its stdout");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("read the aio-pika consumer's READY");
    assert_eq!(line.trim(), "READY", "the aio-pika consumer did not start");
    child
}

/// One measurement by an aio-pika caller process: calls/s, p50 and p99 (its own clock); the
/// CPU columns are the aio-pika consumer's and the broker's, the caller's is not read.
fn measure_aio_pika(
    python: &std::path::Path,
    procedure: &str,
    calls: usize,
    in_flight: usize,
    consumer: u32,
    broker: Option<u32>,
) -> Figures {
    let cpu = |pid: Option<u32>| pid.and_then(procfs::process_cpu).unwrap_or_default();
    let before = [cpu(Some(consumer)), cpu(broker)];
    let text = test_support::stdout_of(
        std::process::Command::new(python)
            .arg(aio_pika_script())
            .args([
                "call",
                procedure,
                &calls.to_string(),
                &in_flight.to_string(),
            ]),
    );
    let after = [cpu(Some(consumer)), cpu(broker)];
    let numbers: Vec<f64> = text
        .split_whitespace()
        .map(|n| n.parse().expect("a number from the aio-pika caller"))
        .collect();
    let done = ((calls / in_flight) * in_flight) as f64;
    let per_call = |i: usize| after[i].saturating_sub(before[i]).as_secs_f64() * 1e6 / done;
    Figures {
        per_second: numbers[0],
        p50_us: numbers[1],
        p99_us: numbers[2],
        caller_us: f64::NAN,
        consumer_us: per_call(0),
        broker_us: per_call(1),
    }
}

/// Measurements of each kind, alternating floor and rpc; the median is reported.
const ROUNDS: usize = 5;

/// The procedure benchmarked: as little work as a procedure can do.
struct Bench;

#[rpc_core::handler]
impl Bench {
    /// Adds two numbers.
    pub fn add(a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    /// Adds two numbers, on the runtime rather than a blocking thread.
    pub async fn add_async(a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }
}

/// One call at a time or many at once.
trait Caller: Clone + Send + Sync + 'static {
    fn call(&self) -> impl std::future::Future<Output = ()> + Send;
}

#[derive(Clone)]
struct Rpc(Client, String);

impl Caller for Rpc {
    async fn call(&self) {
        let sum: i64 = self.0.call(&self.1, &(2i64, 3i64)).await.expect("rpc call");
        assert_eq!(sum, 5);
    }
}

/// The floor's caller: publish with reply_to and a correlation id, wait for the reply.
#[derive(Clone)]
struct Floor {
    channel: Channel,
    queue: String,
    reply_to: String,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>,
    counter: Arc<AtomicU64>,
    /// Persistent in the quorum topology, as the rpc client's requests.
    delivery_mode: u8,
}

impl Caller for Floor {
    async fn call(&self) {
        let id = self.counter.fetch_add(1, Ordering::Relaxed).to_string();
        let (sender, receiver) = oneshot::channel();
        self.pending
            .lock()
            .expect("lock")
            .insert(id.clone(), sender);
        let properties = BasicProperties::default()
            .with_correlation_id(id.as_str().into())
            .with_reply_to(self.reply_to.as_str().into())
            .with_delivery_mode(self.delivery_mode);
        self.channel
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions::default(),
                &[0u8; 16],
                properties,
            )
            .await
            .expect("floor publish");
        receiver.await.expect("floor reply");
    }
}

async fn connect(url: &str) -> Connection {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("no RabbitMQ (scripts/start_rabbitmq.sh): {e}"))
}

/// The floor's responder: echo each request to its reply_to, then ack. No logic at all.
async fn floor_responder(connection: &Connection, queue: &str, config: &AmqpConfig) {
    let channel = connection.create_channel().await.expect("channel");
    peer_queue::declare_request_queue(&channel, queue, config.topology).await;
    channel
        .basic_qos(IN_FLIGHT as u16, BasicQosOptions { global: false })
        .await
        .expect("qos");
    let mut requests = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = requests.next().await {
            // Each request on a task of its own, as the rpc consumer does, so that 64 in
            // flight are answered concurrently rather than one publish-and-ack after another.
            let channel = channel.clone();
            tokio::spawn(async move {
                let Some(reply_to) = delivery.properties.reply_to().clone() else {
                    return;
                };
                let mut properties = BasicProperties::default();
                if let Some(id) = delivery.properties.correlation_id() {
                    properties = properties.with_correlation_id(id.clone());
                }
                let _ = channel
                    .basic_publish(
                        "".into(),
                        reply_to,
                        BasicPublishOptions::default(),
                        &delivery.data,
                        properties,
                    )
                    .await;
                let _ = delivery.ack(BasicAckOptions::default()).await;
            });
        }
    });
}

async fn floor_caller(
    connection: &Connection,
    queue: &str,
    mode: ReplyMode,
    topology: Topology,
) -> Floor {
    let channel = connection.create_channel().await.expect("channel");
    let reply_to = match mode {
        ReplyMode::DirectReplyTo => DIRECT_REPLY_TO.to_string(),
        _ => {
            let options = QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            };
            let declared = channel
                .queue_declare("".into(), options, FieldTable::default())
                .await
                .expect("reply queue");
            declared.name().as_str().to_string()
        }
    };
    let mut replies = channel
        .basic_consume(
            reply_to.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume replies");
    let pending: Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>> = Arc::default();
    let waiting = pending.clone();
    tokio::spawn(async move {
        while let Some(Ok(reply)) = replies.next().await {
            let Some(id) = reply.properties.correlation_id() else {
                continue;
            };
            if let Some(sender) = waiting.lock().expect("lock").remove(id.as_str()) {
                let _ = sender.send(reply.data);
            }
        }
    });
    Floor {
        channel,
        queue: queue.to_string(),
        reply_to,
        pending,
        counter: Arc::default(),
        // Persistent in the quorum topology, as the transport's requests.
        delivery_mode: if topology == Topology::Quorum { 2 } else { 1 },
    }
}

/// Calls per second, p50 and p99 in microseconds, CPU per call of each process.
struct Figures {
    per_second: f64,
    p50_us: f64,
    p99_us: f64,
    /// CPU time of this process (the callers) per call.
    caller_us: f64,
    /// CPU time of the consumer process per call.
    consumer_us: f64,
    /// CPU time of the broker per call, when it runs on this machine.
    broker_us: f64,
}

/// The processes whose CPU time is read: this one, the consumer, the local broker.
#[derive(Clone, Copy)]
struct Processes {
    consumer: u32,
    broker: Option<u32>,
}

impl Processes {
    fn cpu(&self) -> [Duration; 3] {
        let cpu = |pid: Option<u32>| pid.and_then(procfs::process_cpu).unwrap_or_default();
        [
            cpu(Some(std::process::id())),
            cpu(Some(self.consumer)),
            cpu(self.broker),
        ]
    }
}

async fn measure<C: Caller>(
    caller: &C,
    calls: usize,
    in_flight: usize,
    processes: Processes,
) -> Figures {
    for _ in 0..200 {
        caller.call().await; // warm up
    }
    let per_task = calls / in_flight;
    let before = processes.cpu();
    let started = Instant::now();
    let tasks = (0..in_flight).map(|_| {
        let caller = caller.clone();
        tokio::spawn(async move {
            let mut latencies = Latencies::new();
            for _ in 0..per_task {
                let t = Instant::now();
                caller.call().await;
                latencies.record(t.elapsed());
            }
            latencies
        })
    });
    let mut latencies = Latencies::new();
    for task in futures::future::join_all(tasks).await {
        latencies.merge(&task.expect("task"));
    }
    let elapsed = started.elapsed();
    let after = processes.cpu();
    let calls = latencies.len() as f64;
    let per_call = |i: usize| after[i].saturating_sub(before[i]).as_secs_f64() * 1e6 / calls;
    Figures {
        per_second: calls / elapsed.as_secs_f64(),
        p50_us: latencies.p50().as_secs_f64() * 1e6,
        p99_us: latencies.p99().as_secs_f64() * 1e6,
        caller_us: per_call(0),
        consumer_us: per_call(1),
        broker_us: per_call(2),
    }
}

/// The median of each figure over the rounds.
fn median(rounds: Vec<Figures>) -> Figures {
    let mid = |pick: fn(&Figures) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    Figures {
        per_second: mid(|f| f.per_second),
        p50_us: mid(|f| f.p50_us),
        p99_us: mid(|f| f.p99_us),
        caller_us: mid(|f| f.caller_us),
        consumer_us: mid(|f| f.consumer_us),
        broker_us: mid(|f| f.broker_us),
    }
}

fn row(label: &str, f: &Figures) -> String {
    format!(
        "| {label} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
        f.per_second, f.p50_us, f.p99_us, f.caller_us, f.consumer_us, f.broker_us
    )
}

fn ratio_row(label: &str, rpc: &Figures, floor: &Figures) -> String {
    format!(
        "| **{label}** | **{:.0}%** | **{:.2}x** | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
        100.0 * rpc.per_second / floor.per_second,
        rpc.p50_us / floor.p50_us,
        rpc.p99_us / floor.p99_us,
        rpc.caller_us / floor.caller_us,
        rpc.consumer_us / floor.consumer_us,
        rpc.broker_us / floor.broker_us
    )
}

/// The consumer process: this binary started again with [`CONSUMER_ENV`]. Serves the floor's
/// responder on `<name>_floor.echo` and the rpc consumer of `<name>.add`/`.add_async` in
/// `topology`, says `READY` on stdout, and stops when its stdin closes.
fn consumer_process(spec: &str) {
    let (name, topology) = spec.split_once(',').expect("<name>,<topology>");
    let topology: Topology = topology.parse().expect("a topology");
    let config = AmqpConfig::new(AmqpUrl::resolve(None)).with_topology(topology);
    // The consumer app's runtime: one thread for the network, the procedures on the
    // registry's workers.
    let runtime = test_support::current_thread_runtime();
    runtime.block_on(async {
        let connection = connect(config.url.as_str()).await;
        floor_responder(&connection, &format!("{name}_floor.echo"), &config).await;
        // The apps' defaults: one worker, the default prefetch pipeline.
        let mut registry = Registry::new();
        registry.register_as(name.to_string(), Bench);
        let server = AmqpServer::start(config.clone(), Arc::new(registry))
            .await
            .expect("rpc consumer");
        println!("READY");
        let _ = tokio::task::spawn_blocking(|| {
            let mut rest = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest);
        })
        .await;
        server.shutdown().await;
        let _ = connection.close(200, "done".into()).await;
    });
}

/// The consumer process of `name` in `topology`, once it is ready.
fn start_consumer(name: &str, topology: Topology) -> std::process::Child {
    let mut child = std::process::Command::new(std::env::current_exe().expect("this binary"))
        .env(CONSUMER_ENV, format!("{name},{topology}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the consumer process");
    let stdout = child.stdout.take().expect("its stdout");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("read the consumer's READY");
    assert_eq!(line.trim(), "READY", "the consumer process did not start");
    child
}

async fn variant(
    config: &AmqpConfig,
    mode: ReplyMode,
    calls: usize,
    processes: Processes,
    name: &str,
    aio_pika: Option<(&std::path::Path, u32)>,
) -> Vec<String> {
    let mode_name = match mode {
        ReplyMode::DirectReplyTo => format!("{}, direct reply-to", config.topology),
        _ => format!("{}, reply queue", config.topology),
    };
    let config = config.clone().with_reply_mode(mode);

    let floor_queue = format!("{name}_floor.echo");
    let caller_connection = connect(config.url.as_str()).await;
    let floor = floor_caller(&caller_connection, &floor_queue, mode, config.topology).await;
    let transport = AmqpTransport::connect(config.clone())
        .await
        .expect("rpc client");
    let client = Client::new(transport);
    // A synchronous procedure runs on a blocking thread (rpc-core's Registry), an async one on
    // the runtime: the difference is rpc-core's thread hop, the same over every transport.
    let sync = Rpc(client.clone(), format!("{name}.add"));
    let asynchronous = Rpc(client, format!("{name}.add_async"));

    let mut rows = Vec::new();
    for (label, in_flight) in [("1 at a time", 1), ("64 in flight", IN_FLIGHT)] {
        // Alternate floor and rpc over several rounds and keep the median of each figure, so
        // that load from elsewhere on the machine weighs on both alike.
        let (mut floors, mut syncs, mut asyncs) = (Vec::new(), Vec::new(), Vec::new());
        let mut pikas = Vec::new();
        let cases = Cases::from_env("BENCH_CASE");
        let wanted = |kind: &str| cases.wants(&format!("{mode_name}, {label}: {kind}"));
        for _ in 0..ROUNDS {
            if wanted("floor") {
                floors.push(measure(&floor, calls, in_flight, processes).await);
            }
            if wanted("rpc, sync procedure") {
                syncs.push(measure(&sync, calls, in_flight, processes).await);
            }
            if wanted("rpc, async procedure") {
                asyncs.push(measure(&asynchronous, calls, in_flight, processes).await);
            }
            let pika = aio_pika.filter(|_| in_flight == IN_FLIGHT && wanted("aio-pika JsonRPC"));
            if let Some((python, pika_consumer)) = pika {
                let procedure = format!("{name}_pika.echo");
                pikas.push(measure_aio_pika(
                    python,
                    &procedure,
                    calls,
                    in_flight,
                    pika_consumer,
                    processes.broker,
                ));
            }
        }
        let floor = (!floors.is_empty()).then(|| median(floors));
        if let Some(floor) = &floor {
            rows.push(row(&format!("{mode_name}, {label}: floor"), floor));
        }
        let pika = (!pikas.is_empty()).then(|| median(pikas));
        if let Some(pika) = &pika {
            rows.push(row(
                &format!("{mode_name}, {label}: aio-pika JsonRPC"),
                pika,
            ));
        }
        for (kind, rounds) in [("sync", syncs), ("async", asyncs)] {
            if rounds.is_empty() {
                continue;
            }
            let rpc = median(rounds);
            rows.push(row(
                &format!("{mode_name}, {label}: rpc, {kind} procedure"),
                &rpc,
            ));
            if let Some(floor) = &floor {
                rows.push(ratio_row(
                    &format!("{mode_name}, {label}: rpc, {kind} / floor"),
                    &rpc,
                    floor,
                ));
            }
            if let Some(pika) = &pika {
                rows.push(ratio_row(
                    &format!("{mode_name}, {label}: rpc, {kind} / aio-pika"),
                    &rpc,
                    pika,
                ));
            }
        }
    }
    let _ = caller_connection.close(200, "done".into()).await;
    rows
}

fn main() {
    if let Ok(spec) = std::env::var(CONSUMER_ENV) {
        return consumer_process(&spec);
    }
    // `cargo bench` passes --bench; filters are not supported.
    let calls = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3_000usize)
        .max(IN_FLIGHT);
    let only = std::env::var("BENCH_TOPOLOGY").ok();
    let runtime = caller_runtime();
    let python = python_venv::python();
    let config = AmqpConfig::new(AmqpUrl::resolve(None));
    println!(
        "AMQP transport vs. lapin floor: {calls} calls per measurement, median of {ROUNDS} rounds, broker {}, each end in its own process",
        config.url
    );
    println!();
    println!("| measurement | calls/s | p50 µs | p99 µs | caller CPU µs/call | consumer CPU µs/call | broker CPU µs/call |");
    println!("|---|---|---|---|---|---|---|");
    for topology in [Topology::Quorum, Topology::Classic] {
        if only.as_deref().is_some_and(|t| t != topology.as_str()) {
            continue;
        }
        let name = format!("bench_{}_{topology}", std::process::id());
        let mut consumer = start_consumer(&name, topology);
        let mut pika_consumer =
            start_aio_pika_consumer(&python, &format!("{name}_pika.echo"), topology);
        let processes = Processes {
            consumer: consumer.id(),
            broker: broker_pid(&config),
        };
        let config = config.clone().with_topology(topology);
        if processes.broker.is_none() {
            println!("(the broker runs elsewhere: its CPU is not measured)");
        }
        runtime.block_on(async {
            for mode in [ReplyMode::Queue, ReplyMode::DirectReplyTo] {
                // aio-pika's JsonRPC replies through a reply queue: measured beside that mode.
                let pika =
                    (mode == ReplyMode::Queue).then_some((python.as_path(), pika_consumer.id()));
                for line in variant(&config, mode, calls, processes, &name, pika).await {
                    println!("{line}");
                }
            }
        });
        drop(consumer.stdin.take()); // the consumer stops
        let _ = consumer.wait();
        drop(pika_consumer.stdin.take());
        let _ = pika_consumer.wait();
        runtime.block_on(async {
            let queues = [
                format!("{name}_floor.echo"),
                format!("{name}.add"),
                format!("{name}.add_async"),
                format!("{name}_pika.echo"),
            ];
            transport_amqp::delete_request_queues(&config, &queues)
                .await
                .expect("delete the bench's queues");
        });
    }
}

/// The calling process's runtime: two threads, as the producer's when it serves HTTP, or with
/// `BENCH_CALLER_RUNTIME=current` one, as the producer's when it only runs its task generator.
fn caller_runtime() -> tokio::runtime::Runtime {
    match std::env::var("BENCH_CALLER_RUNTIME").as_deref() {
        Ok("current") => test_support::current_thread_runtime(),
        _ => test_support::runtime(2),
    }
}

/// The process listening on the broker's port, when it runs on this machine (several RabbitMQ
/// nodes may: test clusters, the TLS node): the socket's inode from /proc/net/tcp{,6}, then the
/// process holding it.
fn broker_pid(config: &AmqpConfig) -> Option<u32> {
    let uri: lapin::uri::AMQPUri = config.url.brokers().next()?.as_str().parse().ok()?;
    let port = format!("{:04X}", uri.authority.port);
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:PORT; state 0A is LISTEN; the inode is field 9.
            let listening = fields.get(3) == Some(&"0A");
            let on_port = fields
                .get(1)
                .is_some_and(|a| a.ends_with(&format!(":{port}")));
            if listening && on_port {
                inodes.extend(fields.get(9).map(|i| format!("socket:[{i}]")));
            }
        }
    }
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let fds = std::fs::read_dir(entry.path().join("fd")).ok()?;
            fds.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|link| inodes.iter().any(|i| link.as_os_str() == i.as_str()))
                .then_some(pid)
        })
}
