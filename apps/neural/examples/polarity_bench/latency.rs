//! One sentence per call: milliseconds per call, through `polarity` and through a batch of one,
//! and the process's resident memory with the model loaded.

use std::time::{Duration, Instant};

use neural::Analyzer;

use test_support::Latencies;

use crate::{cpu_seconds, machine};

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

/// The memory `field` of this process (`VmRSS`, `VmHWM`), in MiB.
fn mib(field: &str) -> String {
    test_support::procfs::memory(std::process::id(), field).map_or_else(
        || "n/a".into(),
        |bytes| format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0)),
    )
}

/// One call of `polarity` (`batch` false) or `polarity_batch` with one sentence: its time.
fn timed(analyzer: &Analyzer, sentence: &str, batch: bool) -> Result<Duration, String> {
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
    let elapsed = t.elapsed();
    std::hint::black_box(p);
    Ok(elapsed)
}

fn report(what: &str, times: &[Duration]) {
    let mut latencies = Latencies::new();
    for &time in times {
        latencies.record(time);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = times.iter().sum::<Duration>() / times.len().max(1) as u32;
    println!(
        "{} calls of {what}, 10-word sentences: mean {:.2} ms, p50 {:.2} ms, \
         p99 {:.2} ms, min {:.2} ms, max {:.2} ms",
        times.len(),
        ms(mean),
        ms(latencies.p50()),
        ms(latencies.p99()),
        ms(latencies.quantile(0.0).unwrap_or_default()),
        ms(latencies.max().unwrap_or_default())
    );
}

/// Times `rounds` calls of `polarity(s)` and `rounds` of `polarity_batch(&[s])`, alternating
/// call by call so that both see the same machine.
pub fn run(rounds: usize) -> Result<(), String> {
    let rounds = rounds.max(1);
    println!("before load: VmRSS {}", mib("VmRSS"));
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
    report("polarity(s)", &single);
    report("polarity_batch(&[s])", &batch_of_one);
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        println!(
            "CPU time per call {:.2} ms ({})",
            (b - a) * 1000.0 / (2 * rounds) as f64,
            machine()
        );
    }
    println!(
        "memory with the model loaded: VmRSS {}, VmHWM (peak) {}",
        mib("VmRSS"),
        mib("VmHWM")
    );
    Ok(())
}
