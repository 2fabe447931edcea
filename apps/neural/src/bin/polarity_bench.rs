//! Speed and memory of one polarity call: mean, p50 and p99 milliseconds per 10-word
//! sentence, and the process's resident memory with the model loaded.
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo run --release -p neural --bin polarity_bench -- [ROUNDS]
//! ```
//!
//! candle's CPU matrix multiplication runs with `RAYON_NUM_THREADS` threads (its
//! `utils::get_num_threads`; without the variable, the number of physical cores), and its
//! element-wise kernels, for tensors of 64K elements or more, with `CANDLE_NUM_THREADS`, which
//! falls back to `RAYON_NUM_THREADS`: so `RAYON_NUM_THREADS=1` makes this a one-thread figure.
//! The bench prints the variable as it found it. Besides wall-clock times it prints the CPU
//! time per call, which does not count time spent waiting for a core on a busy machine.

use std::process::ExitCode;
use std::time::Instant;

use neural::Analyzer;

/// Sentences of exactly ten words, scored round-robin.
const SENTENCES: [&str; 10] = [
    "The little cafe by the station serves excellent coffee daily.",
    "My train was late again and I missed the meeting.",
    "We walked along the quiet beach until the sun set.",
    "The new phone keeps crashing and support never answers emails.",
    "Her garden is full of roses, tulips and bright daisies.",
    "This printer jams every time I try to print something.",
    "The children laughed and played happily in the warm park.",
    "Dinner was cold, bland and far too expensive for us.",
    "Thank you for the lovely flowers, they brighten the room.",
    "The weather forecast says heavy rain will continue all week.",
];
/// Calls before timing starts, so lazy set-up is not measured.
const WARMUP: usize = 20;
/// Timed calls unless the first argument says otherwise.
const DEFAULT_ROUNDS: usize = 500;

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn mib(field: &str) -> String {
    status_kib(field).map_or_else(|| "n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat`.
///
/// With one thread this is what the calls cost, whatever else the machine is doing; the
/// wall-clock figures also count time spent waiting for a core.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Some(ticks as f64 / 100.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "n/a".into())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn run() -> Result<(), String> {
    let rounds = match std::env::args().nth(1) {
        Some(n) => n
            .parse::<usize>()
            .map_err(|e| format!("rounds {n:?}: {e}"))?,
        None => DEFAULT_ROUNDS,
    }
    .max(1);
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into());
    println!("RAYON_NUM_THREADS={threads}");
    println!("before load: VmRSS {}", mib("VmRSS:"));

    let dir = neural::default_model_dir();
    let started = Instant::now();
    let analyzer = Analyzer::load(&dir).map_err(|e| e.to_string())?;
    println!("load: {:.0?} from {}", started.elapsed(), dir.display());

    for i in 0..WARMUP {
        analyzer
            .polarity(SENTENCES[i % SENTENCES.len()])
            .map_err(|e| e.to_string())?;
    }
    let mut ms = Vec::with_capacity(rounds);
    let cpu_before = cpu_seconds();
    for i in 0..rounds {
        let s = SENTENCES[i % SENTENCES.len()];
        let t = Instant::now();
        let p = analyzer.polarity(s).map_err(|e| e.to_string())?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(p);
    }
    let cpu_after = cpu_seconds();
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    println!(
        "{rounds} calls, 10-word sentences: mean {mean:.2} ms, p50 {:.2} ms, p99 {:.2} ms, \
         min {:.2} ms, max {:.2} ms",
        percentile(&ms, 50.0),
        percentile(&ms, 99.0),
        ms[0],
        ms[ms.len() - 1]
    );
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        println!(
            "CPU time per call {:.2} ms (1-minute load average {} on {} cores)",
            (b - a) * 1000.0 / rounds as f64,
            load_average(),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
    }
    println!(
        "memory with the model loaded: VmRSS {}, VmHWM (peak) {}",
        mib("VmRSS:"),
        mib("VmHWM:")
    );
    Ok(())
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
