//! Speed and memory of the polarity network: one call's latency, and sentences per second
//! by batch size, in one process or two side by side.
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo run --release -p neural --example polarity_bench -- [MODE] [ARGS]
//!
//!   latency [ROUNDS]           one sentence per call (default mode, 500 rounds): p50/p99 of
//!                              polarity(s) and of polarity_batch(&[s]), interleaved; memory
//!   sweep [SECONDS] [SIZES..]  sentences/s at each batch size (default 5 s, 1 2 4 8 16 32),
//!                              three rounds over the sizes, real-token fraction
//!   pair [SECONDS] [SIZES..]   two one-thread processes side by side (default 10 s, 1 8),
//!                              three rounds: each process's and the sum's sentences/s
//!   cost                       time of one pass over k inputs of w tokens, fitted a + b·k·w
//!   all                        latency 1000, cost, sweep, pair: the figures of "Neural
//!                              batching" in docs/benchmarks.md
//! ```
//!
//! candle's CPU matrix multiplication runs with `RAYON_NUM_THREADS` threads (its
//! `utils::get_num_threads`; without the variable, the number of physical cores), and its
//! element-wise kernels, for tensors of 64K elements or more, with `CANDLE_NUM_THREADS`, which
//! falls back to `RAYON_NUM_THREADS`: so `RAYON_NUM_THREADS=1` makes this a one-thread figure
//! (`pair` sets it to 1 for its two processes whatever it was). Every mode prints the
//! variable as it found it and the load average; besides wall-clock times it prints the CPU
//! time per sentence, which does not count time spent waiting for a core on a busy machine.
//!
//! The throughput modes score `data/producer_sentences.txt`, 256 sentences made by the
//! producer's own generator (`apps/src/producer/sentences.rs`), in file order, batch after
//! batch, wrapping around.

mod latency;
mod throughput;

use std::process::ExitCode;

use neural::Analyzer;

/// Sentences like the producer's, one a line, `#` lines are comments.
const PRODUCER_SENTENCES: &str = include_str!("../../data/producer_sentences.txt");

/// The producer-like sentences of `data/producer_sentences.txt`.
fn producer_sentences() -> Vec<&'static str> {
    PRODUCER_SENTENCES
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect()
}

/// Loads the analyzer from the default model directory, saying how long it took.
fn load() -> Result<Analyzer, String> {
    let dir = neural::default_model_dir();
    let started = std::time::Instant::now();
    let analyzer = Analyzer::load(&dir).map_err(|e| e.to_string())?;
    eprintln!("load: {:.0?} from {}", started.elapsed(), dir.display());
    Ok(analyzer)
}

/// CPU seconds this process has used (user + system), from `/proc`.
///
/// With one thread this is what the calls cost, whatever else the machine is doing; the
/// wall-clock figures also count time spent waiting for a core.
fn cpu_seconds() -> Option<f64> {
    test_support::procfs::process_cpu(std::process::id()).map(|cpu| cpu.as_secs_f64())
}

/// The 1-minute load average and the number of cores, as one line's ending.
fn machine() -> String {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "n/a".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("1-minute load average {load} on {cores} cores")
}

/// Parses the argument at `at` as a number, or gives `default` when there is none.
fn number<T: std::str::FromStr>(args: &[String], at: usize, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match args.get(at) {
        Some(a) => a.parse().map_err(|e| format!("{a:?}: {e}")),
        None => Ok(default),
    }
}

/// Parses the arguments from `at` on as batch sizes, or gives `default` when there are none.
fn sizes(args: &[String], at: usize, default: &[usize]) -> Result<Vec<usize>, String> {
    if args.len() <= at {
        return Ok(default.to_vec());
    }
    args[at..]
        .iter()
        .map(|a| match a.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("batch size {a:?}: expected a positive number")),
        })
        .collect()
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into());
    let mode = args.first().map_or("latency", String::as_str);
    // A bare number is the old form: `polarity_bench ROUNDS`.
    let (mode, rest) = if mode.parse::<usize>().is_ok() {
        ("latency", &args[..])
    } else {
        (mode, args.get(1..).unwrap_or_default())
    };
    if mode != throughput::CHILD_MODE {
        println!("RAYON_NUM_THREADS={threads}; {}", machine());
    }
    match mode {
        "latency" => latency::run(number(rest, 0, latency::DEFAULT_ROUNDS)?),
        "sweep" => throughput::sweep(
            number(rest, 0, throughput::SWEEP_SECONDS)?,
            &sizes(rest, 1, &throughput::SWEEP_SIZES)?,
        ),
        "pair" => throughput::pair(
            number(rest, 0, throughput::PAIR_SECONDS)?,
            &sizes(rest, 1, &throughput::PAIR_SIZES)?,
        ),
        "cost" => throughput::cost(),
        "all" => {
            latency::run(1000)?;
            throughput::cost()?;
            throughput::sweep(throughput::SWEEP_SECONDS, &throughput::SWEEP_SIZES)?;
            throughput::pair(throughput::PAIR_SECONDS, &throughput::PAIR_SIZES)
        }
        m if m == throughput::CHILD_MODE => throughput::child(rest),
        other => Err(format!(
            "unknown mode {other:?}: latency, sweep, pair, cost or all (see the file's docs)"
        )),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("polarity_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
