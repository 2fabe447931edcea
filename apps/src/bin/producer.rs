//! `producer`: generates tasks (the seed's client payload) and has the consumers run them;
//! prints a status line as it goes and a summary at the end. Exits non-zero if a task failed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rpc_apps::cli::{init_logging, parse_seconds, shutdown_on_signal, TransportOptions};
use rpc_apps::connect;
use rpc_apps::producer::{self, Mix, ProducerConfig};
use rpc_core::Client;

/// Sends tasks to consumers: every --interval a random fibonacci_generator.calculate(100..=10000)
/// or neural_analyzer.polarity(<sentence>), or text commands read from stdin.
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

    /// Each call's timeout, in seconds.
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    timeout: Duration,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging("info");
    let transport = match connect::client_transport(&args.transport, &args.consumers).await {
        Ok(transport) => transport,
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
    let stats = producer::run(Client::from_arc(transport), config, shutdown).await;
    println!("{}", stats.summary());
    if stats.total().failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
