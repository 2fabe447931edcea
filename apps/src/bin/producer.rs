//! `producer`: generates tasks (the seed's client payload) and has the consumers run them;
//! prints a status line as it goes and a summary at the end. Exits non-zero if a task failed.
//! With `--listen ADDR` it is a web service: outside clients call procedures over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rpc_apps::cli::{init_logging, parse_seconds, shutdown_on_signal, TransportOptions};
use rpc_apps::connect;
use rpc_apps::front_door::{FrontDoor, FrontDoorConfig};
use rpc_apps::http::{self, ConnectionLimits};
use rpc_apps::producer::{self, Mix, Observer, ProducerConfig};
use rpc_apps::prometheus;
use rpc_apps::security::{reload_on_sighup, ApiKeys, ProducerTls, Protection, TransportSecurity};
use rpc_core::Client;

/// Sends tasks to consumers: every --interval a random fibonacci_generator.calculate(100..=10000)
/// or neural_analyzer.polarity(SENTENCE), or text commands read from stdin. With --listen,
/// serves an HTTP/JSON API instead (POST /v1/call/{procedure}), or beside them with --generate.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    transport: TransportOptions,

    /// The consumers, for --transport tcp: ports (on 127.0.0.1) or host:port.
    #[arg(value_name = "CONSUMER")]
    consumers: Vec<String>,

    /// Seconds between two tasks; 0 sends as fast as the consumers take them.
    #[arg(long, default_value = "0.5", value_parser = parse_seconds)]
    interval: Duration,

    /// Stop after this many tasks [default: run until Ctrl-C].
    #[arg(long)]
    count: Option<u64>,

    /// Seed for reproducible tasks [default: random].
    #[arg(long)]
    seed: Option<u64>,

    /// Which procedures to draw from: both, fibonacci or polarity.
    #[arg(long, default_value = "both")]
    mix: Mix,

    /// The largest n of generated Fibonacci tasks (n is drawn from 100..=this).
    #[arg(long, default_value_t = rpc_apps::producer::FIBONACCI_MAX)]
    fibonacci_max: i64,

    /// Read tasks as text commands from stdin (`fibonacci_generator calculate 10`), one a line.
    #[arg(long)]
    stdin: bool,

    /// How many tasks are called at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,

    /// How many tasks may wait in the queue before the generator waits.
    #[arg(long, default_value_t = 64)]
    queue: usize,

    /// Each call's timeout, in seconds (an HTTP call's default; see --max-timeout).
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    timeout: Duration,

    #[command(flatten)]
    tls: ProducerTls,

    #[command(flatten)]
    http: HttpArgs,
}

/// The front door's options.
#[derive(Debug, clap::Args)]
struct HttpArgs {
    /// Serve the HTTP/JSON API, /healthz, /readyz, /metrics and the dashboard on this address
    /// (e.g. 127.0.0.1:8080); the task generator then runs only with --generate.
    #[arg(long, env = "RPC_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// With --listen: the API keys clients must send (`Authorization: Bearer <key>`), one a
    /// line in this file (at least 16 characters each; `#` comments); read again on SIGHUP.
    /// /healthz, /readyz and the dashboard's page stay open.
    #[arg(long, env = "RPC_API_KEYS_FILE", value_name = "FILE")]
    api_keys: Option<PathBuf>,

    /// With --listen: accept the risk of an address other machines can reach without API
    /// keys: anyone who reaches it can call every procedure (protected mode refuses to start
    /// otherwise).
    #[arg(long)]
    insecure: bool,

    /// With --listen: run the task generator (or --stdin) beside the API.
    #[arg(long)]
    generate: bool,

    /// Threads serving HTTP (with --listen); 0 = one per core.
    #[arg(long, env = "RPC_THREADS", default_value_t = 0)]
    threads: usize,

    /// HTTP calls running at once; 0 = what the consumers can run (TCP: each consumer's
    /// workers + 1, following them as they come and go; AMQP: 64).
    #[arg(long, default_value_t = 0)]
    max_in_flight: usize,

    /// The queue-time target, in seconds: an HTTP call that would wait longer than this for a
    /// place to run gets 503 Overloaded at once, one that has waited this long gets it then.
    #[arg(long, default_value = "0.02", value_parser = parse_seconds)]
    max_queue_time: Duration,

    /// HTTP calls waiting for a place at most, whatever their expected wait (bounds the memory
    /// their bodies take).
    #[arg(long, default_value_t = 1024)]
    max_waiting: usize,

    /// The largest HTTP request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body: usize,

    /// The longest timeout an HTTP request may ask for with its x-timeout header, in seconds.
    #[arg(long, default_value = "300", value_parser = parse_seconds)]
    max_timeout: Duration,

    /// HTTP connections open at once.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,

    /// Seconds an HTTP client may take to send a request's headers.
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    header_timeout: Duration,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging("info");
    // The front door serves many clients at once: one thread per core then. The generator
    // alone keeps the single thread it always had.
    let runtime = if args.http.listen.is_some() && args.http.threads != 1 {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if args.http.threads > 1 {
            builder.worker_threads(args.http.threads);
        }
        builder.enable_all().build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    match runtime {
        Ok(runtime) => runtime.block_on(run(args)),
        Err(err) => {
            eprintln!("producer: cannot start the runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> ExitCode {
    let security = match TransportSecurity::producer(&args.tls) {
        Ok(security) => security,
        Err(err) => {
            eprintln!("producer: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(secret) = &security.secret {
        tracing::info!("the shared secret from {}", secret.source());
    }
    let api_keys = match &args.http.api_keys {
        Some(path) => match ApiKeys::load(path) {
            Ok(keys) => Some(keys),
            Err(err) => {
                eprintln!("producer: {err}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    if let Some(addr) = args.http.listen {
        let protection = Protection {
            listener: "producer --listen",
            secured_by: api_keys.as_ref().map(|k| format!("{} API keys", k.len())),
            how_to_secure: "--api-keys FILE (or RPC_API_KEYS_FILE; TLS terminated in front of \
                            it, see the README)",
            insecure: args.http.insecure,
        };
        if let Err(err) = protection.check(&addr.ip().to_string()) {
            eprintln!("producer: {err}");
            return ExitCode::FAILURE;
        }
    }
    let connected = match connect::connect(&args.transport, &args.consumers, &security).await {
        Ok(connected) => connected,
        Err(err) => {
            eprintln!("producer: {err}");
            return ExitCode::FAILURE;
        }
    };
    let config = ProducerConfig::default()
        .with_interval(args.interval)
        .with_count(args.count)
        .with_seed(args.seed)
        .with_mix(args.mix)
        .with_fibonacci_max(args.fibonacci_max)
        .with_stdin(args.stdin)
        .with_concurrency(args.concurrency)
        .with_queue(args.queue)
        .with_timeout(args.timeout);
    let shutdown = shutdown_on_signal();
    let observer = Arc::new(Observer::new());
    let client = Client::from_arc(connected.transport);

    let Some(addr) = args.http.listen else {
        let stats = producer::run(client, config, observer, shutdown).await;
        println!("{}", stats.summary());
        return if stats.total().failed > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    };

    let metrics = match prometheus::install() {
        Ok(handle) => Some(handle),
        Err(err) => {
            tracing::warn!("{err}: /metrics will answer 503");
            None
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("producer: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().map_or(addr, |a| a);
    let mut door_config = FrontDoorConfig::default();
    door_config.max_in_flight = args.http.max_in_flight;
    door_config.max_queue_time = args.http.max_queue_time;
    door_config.max_waiting = args.http.max_waiting;
    door_config.max_body = args.http.max_body;
    door_config.timeout = args.timeout;
    door_config.max_timeout = args.http.max_timeout;
    if let Some(keys) = &api_keys {
        tracing::info!(keys = keys.len(), "API keys from {}", keys.path().display());
        if let Err(err) = reload_on_sighup(keys.clone()) {
            tracing::warn!("{err}: the API keys are read again only by a restart");
        }
    }
    door_config.api_keys = api_keys;
    let door = FrontDoor::new(
        client.clone(),
        connected.consumers,
        observer.clone(),
        metrics,
        door_config,
    );
    let mut limits = ConnectionLimits::default();
    limits.max_connections = args.http.max_connections;
    limits.header_timeout = args.http.header_timeout;
    tracing::info!(addr = %bound, "HTTP listening: POST /v1/call/{{procedure}}, dashboard at http://{bound}/");
    let server = tokio::spawn(http::serve(
        listener,
        door.router(),
        limits,
        shutdown.clone(),
    ));
    if args.http.generate {
        producer::run(client, config, observer.clone(), shutdown.clone()).await;
    }
    shutdown.cancelled().await;
    if let Err(err) = server.await {
        tracing::error!("the HTTP server failed: {err}");
    }
    println!("{}", observer.stats().summary());
    ExitCode::SUCCESS
}
