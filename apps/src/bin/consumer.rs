//! `consumer`: runs the procedures. Serves `fibonacci_generator` and `neural_analyzer` over the
//! chosen transport until Ctrl-C or SIGTERM, then finishes and answers the tasks it holds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rpc_apps::cli::{init_logging, shutdown_on_signal, TransportKind, TransportOptions};
use rpc_apps::connect;
use rpc_apps::security::{ConsumerTls, Protection, TransportSecurity};
use rpc_apps::workloads::{self, NeuralAnalyzer};

/// Runs the procedures fibonacci_generator.calculate and neural_analyzer.polarity for
/// producers, over TCP (`--port`) or a RabbitMQ broker.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    transport: TransportOptions,

    /// The TCP port to listen on (with --transport tcp).
    #[arg(long, default_value_t = 9000)]
    port: u16,

    /// The address to listen on (with --transport tcp); 0.0.0.0 to serve other machines.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,

    /// How many tasks run at once (each on its own thread).
    #[arg(long, env = "RPC_WORKERS", default_value_t = 1)]
    workers: usize,

    /// The most calls of one batch procedure (neural_analyzer.polarity) run as one batch, below
    /// the procedure's own maximum (8, chosen on measurement); 1 runs each call alone.
    #[arg(long, env = "RPC_MAX_BATCH", value_name = "N")]
    max_batch: Option<usize>,

    /// Where the neural network's files are [default: $RPC_MODEL_DIR, else ./models/all-minilm-l6-v2].
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,

    /// Serve without the neural network: Fibonacci only (`neural_analyzer.*` is then an
    /// unknown procedure here).
    #[arg(long)]
    no_model: bool,

    /// Serve Prometheus metrics (GET /metrics) on this address, e.g. 127.0.0.1:9100: calls
    /// by procedure and outcome, run time, time waited for a worker, workers busy.
    #[arg(long, env = "RPC_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,

    #[command(flatten)]
    tls: ConsumerTls,

    /// Accept the risk of a --host other machines can reach with neither TLS nor a shared
    /// secret: anyone who reaches the port can run every procedure (protected mode refuses
    /// to start otherwise); likewise a --metrics-listen other machines can reach, which has no
    /// authentication.
    #[arg(long)]
    insecure: bool,
}

/// What secures a consumer's port, for protected mode's message.
const HOW_TO_SECURE: &str = "--tls-cert FILE --tls-key FILE (TLS), or a shared secret in the file \
                             named by RPC_SECRET_FILE (or in RPC_SECRET)";

fn main() -> ExitCode {
    // Each worker runs the network on one thread: parallelism comes from --workers (and from
    // more consumers), not from threads inside one call competing with the other workers.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let args = Args::parse();
    init_logging("info");
    let security = match TransportSecurity::consumer(&args.tls) {
        Ok(security) => security,
        Err(err) => {
            eprintln!("consumer: {err}");
            return ExitCode::FAILURE;
        }
    };
    if args.transport.transport == TransportKind::Tcp {
        let protection = Protection {
            listener: "consumer --host",
            secured_by: security.secured_by(),
            how_to_secure: HOW_TO_SECURE,
            insecure: args.insecure,
        };
        if let Err(err) = protection.check(&args.host) {
            eprintln!("consumer: {err}");
            return ExitCode::FAILURE;
        }
        if let Some(by) = security.secured_by() {
            tracing::info!("the TCP port is secured by {by}");
        }
    }
    // The metrics listener has no authentication of its own: off loopback only when told.
    if let Some(addr) = args.metrics_listen {
        let protection = Protection {
            listener: "consumer --metrics-listen",
            secured_by: None,
            how_to_secure: "a loopback address, scraped through a proxy that authenticates",
            insecure: args.insecure,
        };
        if let Err(err) = protection.check(&addr.ip().to_string()) {
            eprintln!("consumer: {err}");
            return ExitCode::FAILURE;
        }
    }
    let analyzer = match args.no_model {
        true => None,
        false => {
            let dir = args
                .model_dir
                .clone()
                .unwrap_or_else(neural::default_model_dir);
            match NeuralAnalyzer::load(&dir) {
                Ok(analyzer) => {
                    tracing::info!("neural network loaded from {}", dir.display());
                    Some(analyzer)
                }
                Err(err) => {
                    tracing::error!("{err}");
                    eprintln!(
                        "consumer: {err}\n(or start with --no-model to serve Fibonacci only)"
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    // One thread carries the network; the procedures run on the registry's worker threads.
    // Measured (docs/benchmarks.md): two consumers on one 2-core machine scale better this way
    // than with a multi-threaded runtime each, whose extra threads compete with the workers.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("consumer: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = shutdown_on_signal();
        // Bound (and the recorder installed) before the registry exists: a taken port stops
        // the consumer at once, and its first call is counted.
        let metrics = match args.metrics_listen {
            Some(addr) => match rpc_apps::prometheus::bind(addr).await {
                Ok(listener) => Some(tokio::spawn(rpc_apps::prometheus::serve(
                    listener,
                    shutdown.clone(),
                ))),
                Err(err) => {
                    eprintln!("consumer: {err}");
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        let mut registry = workloads::registry(args.workers, analyzer);
        if let Some(limit) = args.max_batch {
            registry = registry.with_batch_limit(limit);
        }
        tracing::info!(
            workers = args.workers,
            max_batch = registry.batch_size("neural_analyzer.polarity"),
            "serving {:?} over {:?}",
            registry.procedure_names(),
            args.transport.transport
        );
        let served = connect::serve(
            &args.transport,
            &args.host,
            args.port,
            registry,
            &security,
            shutdown.clone(),
        )
        .await;
        shutdown.cancel();
        if let Some(metrics) = metrics {
            if let Err(err) = metrics.await {
                tracing::error!("the metrics server failed: {err}");
            }
        }
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!("{err}");
                eprintln!("consumer: {err}");
                ExitCode::FAILURE
            }
        }
    })
}
