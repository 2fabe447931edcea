//! One sentence per call: milliseconds per call, through `polarity` and through a batch of one,
//! and the process's resident memory with the model loaded.

use std::time::Instant;

use neural::Analyzer;

use crate::{cpu_seconds, machine, percentile};

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
/// Timed calls of each kind unless told otherwise.
pub const DEFAULT_ROUNDS: usize = 500;

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

/// One call of `polarity` (`batch` false) or `polarity_batch` with one sentence: milliseconds.
fn timed(analyzer: &Analyzer, sentence: &str, batch: bool) -> Result<f64, String> {
    let t = Instant::now();
    let p = if batch {
        analyzer
            .polarity_batch(&[sentence])
            .pop()
            .ok_or("polarity_batch gave no result")?
    } else {
        analyzer.polarity(sentence)
    }
    .map_err(|e| e.to_string())?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    std::hint::black_box(p);
    Ok(ms)
}

fn report(what: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    println!(
        "{} calls of {what}, 10-word sentences: mean {mean:.2} ms, p50 {:.2} ms, \
         p99 {:.2} ms, min {:.2} ms, max {:.2} ms",
        ms.len(),
        percentile(&ms, 50.0),
        percentile(&ms, 99.0),
        ms[0],
        ms[ms.len() - 1]
    );
}

/// Times `rounds` calls of `polarity(s)` and `rounds` of `polarity_batch(&[s])`, alternating
/// call by call so that both see the same machine.
pub fn run(rounds: usize) -> Result<(), String> {
    let rounds = rounds.max(1);
    println!("before load: VmRSS {}", mib("VmRSS:"));
    let analyzer = crate::load()?;
    for i in 0..WARMUP {
        timed(&analyzer, SENTENCES[i % SENTENCES.len()], i % 2 == 1)?;
    }
    let mut single = Vec::with_capacity(rounds);
    let mut batch_of_one = Vec::with_capacity(rounds);
    let cpu_before = cpu_seconds();
    for i in 0..rounds {
        let s = SENTENCES[i % SENTENCES.len()];
        single.push(timed(&analyzer, s, false)?);
        batch_of_one.push(timed(&analyzer, s, true)?);
    }
    let cpu_after = cpu_seconds();
    report("polarity(s)", single);
    report("polarity_batch(&[s])", batch_of_one);
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        println!(
            "CPU time per call {:.2} ms ({})",
            (b - a) * 1000.0 / (2 * rounds) as f64,
            machine()
        );
    }
    println!(
        "memory with the model loaded: VmRSS {}, VmHWM (peak) {}",
        mib("VmRSS:"),
        mib("VmHWM:")
    );
    Ok(())
}
