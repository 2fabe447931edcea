//! Sentences per second by batch size: in this process (`sweep`), in two one-thread processes
//! side by side (`pair`), and the cost of one pass by its shape (`cost`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use neural::{Analyzer, BatchPlan};

use crate::{cpu_seconds, machine, producer_sentences};

/// Seconds per batch size and round in `sweep` unless told otherwise.
pub const SWEEP_SECONDS: f64 = 5.0;
/// Batch sizes of `sweep` unless told otherwise.
pub const SWEEP_SIZES: [usize; 6] = [1, 2, 4, 8, 16, 32];
/// Seconds per batch size and round in `pair` unless told otherwise.
pub const PAIR_SECONDS: f64 = 10.0;
/// Batch sizes of `pair` unless told otherwise.
pub const PAIR_SIZES: [usize; 2] = [1, 8];
/// Rounds over all the sizes, so that a change in the machine's load touches every size.
const ROUNDS: usize = 3;
/// The hidden mode `pair` runs its two processes in.
pub const CHILD_MODE: &str = "__pair_child";
/// How long the two processes of `pair` have to load the model before they start together.
const PAIR_START_DELAY: Duration = Duration::from_secs(5);

/// What one timed run did.
struct Run {
    sentences: usize,
    seconds: f64,
    cpu_seconds: Option<f64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.sentences as f64 / self.seconds
    }
}

/// Scores `sentences` in batches of `size`, from `cursor` on and wrapping around, for at least
/// `seconds`; a sentence that fails is an error (none of these should).
fn run_for(
    analyzer: &Analyzer,
    sentences: &[&str],
    cursor: &mut usize,
    size: usize,
    seconds: f64,
) -> Result<Run, String> {
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut done = 0;
    while done == 0 || started.elapsed().as_secs_f64() < seconds {
        let batch: Vec<&str> = (0..size)
            .map(|i| sentences[(*cursor + i) % sentences.len()])
            .collect();
        *cursor = (*cursor + size) % sentences.len();
        for result in analyzer.polarity_batch(&batch) {
            std::hint::black_box(result.map_err(|e| e.to_string())?);
        }
        done += size;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = cpu_seconds().zip(cpu_before).map(|(b, a)| b - a);
    Ok(Run {
        sentences: done,
        seconds,
        cpu_seconds,
    })
}

/// The share of real tokens over the batches of `size` the runs feed, with the length
/// grouping and with one pass per batch (as if batches were not grouped).
fn real_fractions(lengths: &[usize], size: usize) -> (f64, f64) {
    let (mut real, mut grouped, mut ungrouped) = (0, 0, 0);
    for start in 0..lengths.len().div_ceil(size) {
        let batch: Vec<usize> = (0..size)
            .map(|i| lengths[(start * size + i) % lengths.len()])
            .collect();
        let plan = BatchPlan::new(&batch);
        real += plan.real_tokens();
        grouped += plan.padded_tokens();
        ungrouped += batch.len() * batch.iter().max().copied().unwrap_or(0);
    }
    (real as f64 / grouped as f64, real as f64 / ungrouped as f64)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Sentences per second at each batch size in this process, [`ROUNDS`] rounds over the sizes.
pub fn sweep(seconds: f64, sizes: &[usize]) -> Result<(), String> {
    let analyzer = crate::load()?;
    let sentences = producer_sentences();
    let lengths = sentences
        .iter()
        .map(|s| analyzer.token_count(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    println!(
        "sweep: {} producer sentences of {}..{} tokens (mean {:.1}), {seconds} s per size, \
         {ROUNDS} rounds",
        sentences.len(),
        lengths.iter().min().copied().unwrap_or(0),
        lengths.iter().max().copied().unwrap_or(0),
        lengths.iter().sum::<usize>() as f64 / lengths.len().max(1) as f64,
    );
    let mut cursor = 0;
    for &size in sizes {
        run_for(&analyzer, &sentences, &mut cursor, size, 0.0)?; // warm-up
    }
    let mut runs: Vec<Vec<Run>> = sizes.iter().map(|_| Vec::new()).collect();
    for round in 1..=ROUNDS {
        for (at, &size) in sizes.iter().enumerate() {
            let run = run_for(&analyzer, &sentences, &mut cursor, size, seconds)?;
            println!(
                "round {round} batch {size:>2}: {:6.1} sentences/s ({})",
                run.rate(),
                machine()
            );
            runs[at].push(run);
        }
    }
    println!("| batch | sentences/s, {ROUNDS} rounds | median | CPU ms/sentence | real tokens, grouped | one pass per batch |");
    println!("|---|---|---|---|---|---|");
    for (&size, runs) in sizes.iter().zip(&runs) {
        let rates: Vec<String> = runs.iter().map(|r| format!("{:.1}", r.rate())).collect();
        let cpu: f64 = runs.iter().filter_map(|r| r.cpu_seconds).sum();
        let count: usize = runs.iter().map(|r| r.sentences).sum();
        let (grouped, ungrouped) = real_fractions(&lengths, size);
        println!(
            "| {size} | {} | {:.1} | {:.2} | {:.0}% | {:.0}% |",
            rates.join(" / "),
            median(runs.iter().map(Run::rate).collect()),
            cpu * 1000.0 / count as f64,
            grouped * 100.0,
            ungrouped * 100.0
        );
    }
    Ok(())
}

/// Two one-thread processes side by side, started together, at each batch size.
pub fn pair(seconds: f64, sizes: &[usize]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    println!("pair: two processes with RAYON_NUM_THREADS=1, {seconds} s per size, {ROUNDS} rounds");
    let mut sums: Vec<Vec<f64>> = sizes.iter().map(|_| Vec::new()).collect();
    for round in 1..=ROUNDS {
        for (at, &size) in sizes.iter().enumerate() {
            let start = SystemTime::now() + PAIR_START_DELAY;
            let start_ms = start
                .duration_since(UNIX_EPOCH)
                .map_err(|e| e.to_string())?
                .as_millis();
            let children = (0..2)
                .map(|child| {
                    Command::new(&exe)
                        .args([CHILD_MODE, &size.to_string(), &seconds.to_string()])
                        .args([start_ms.to_string(), (child * 128).to_string()])
                        .env("RAYON_NUM_THREADS", "1")
                        .stdout(Stdio::piped())
                        .spawn()
                        .map_err(|e| format!("start {}: {e}", exe.display()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let (mut rates, mut cpu_ms) = (Vec::new(), Vec::new());
            for child in children {
                let out = child.wait_with_output().map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&out.stdout);
                if !out.status.success() {
                    return Err(format!("pair process failed ({}): {text}", out.status));
                }
                let said = |at: usize| -> Result<f64, String> {
                    text.split_whitespace()
                        .nth(at)
                        .and_then(|t| t.parse().ok())
                        .ok_or_else(|| format!("pair process said {text:?}"))
                };
                rates.push(said(0)?);
                cpu_ms.push(said(1)?);
            }
            let sum: f64 = rates.iter().sum();
            println!(
                "round {round} batch {size:>2}: {:.1} + {:.1} = {sum:.1} sentences/s, \
                 CPU {:.2} / {:.2} ms per sentence ({})",
                rates[0],
                rates[1],
                cpu_ms[0],
                cpu_ms[1],
                machine()
            );
            sums[at].push(sum);
        }
    }
    let base = sums.first().map(|s| median(s.clone()));
    for (&size, sums) in sizes.iter().zip(&sums) {
        let m = median(sums.clone());
        let ratio = base.map_or(String::new(), |b| {
            format!(", {:.2}x batch {}", m / b, sizes[0])
        });
        println!("pair batch {size}: median sum {m:.1} sentences/s{ratio}");
    }
    Ok(())
}

/// One process of `pair`: `SIZE SECONDS START_UNIX_MS CURSOR`; prints its sentences/s and
/// CPU milliseconds per sentence.
pub fn child(args: &[String]) -> Result<(), String> {
    let size: usize = crate::number(args, 0, 1)?;
    let seconds: f64 = crate::number(args, 1, PAIR_SECONDS)?;
    let start_ms: u64 = crate::number(args, 2, 0)?;
    let mut cursor: usize = crate::number(args, 3, 0)?;
    let analyzer = crate::load()?;
    let sentences = producer_sentences();
    run_for(&analyzer, &sentences, &mut cursor, size, 0.0)?; // warm-up
    let start = UNIX_EPOCH + Duration::from_millis(start_ms);
    if let Ok(wait) = start.duration_since(SystemTime::now()) {
        std::thread::sleep(wait);
    } else {
        eprintln!("pair process: loading took past the common start");
    }
    let run = run_for(&analyzer, &sentences, &mut cursor, size, seconds)?;
    let cpu_ms = run
        .cpu_seconds
        .map_or(f64::NAN, |c| c * 1000.0 / run.sentences as f64);
    println!("{} {cpu_ms}", run.rate());
    Ok(())
}

/// Milliseconds of one pass over `k` copies of a `w`-token text: the median wall-clock time
/// and the mean CPU time of repeated passes (at least 20 and one second).
fn pass_ms(analyzer: &Analyzer, k: usize, w: usize) -> Result<(f64, f64), String> {
    let text = vec!["good"; w - 2].join(" ");
    let tokens = analyzer.token_count(&text).map_err(|e| e.to_string())?;
    if tokens != w {
        return Err(format!("{w}-token text has {tokens} tokens"));
    }
    let batch = vec![text.as_str(); k];
    let mut times = Vec::new();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    while times.len() < 20 || started.elapsed() < Duration::from_secs(1) {
        let t = Instant::now();
        for r in analyzer.polarity_batch(&batch) {
            std::hint::black_box(r.map_err(|e| e.to_string())?);
        }
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map_or(f64::NAN, |(b, a)| (b - a) * 1000.0 / times.len() as f64);
    Ok((median(times), cpu))
}

/// Largest pass (`k·w` tokens) in the fit of `cost`.
///
/// The fixed part matters for small passes, which is where the fit is made; larger ones cost
/// a little more than linear per token (attention grows with `w²`, and cache misses).
const FIT_MAX_TOKENS: usize = 256;

/// The time of one pass over `k` inputs of `w` tokens, and the least-squares fit of its CPU
/// time to `a + b·k·w` over passes of up to [`FIT_MAX_TOKENS`], whose `a / b` is the fixed
/// part of a pass in tokens (`PASS_COST_TOKENS`).
pub fn cost() -> Result<(), String> {
    let analyzer = crate::load()?;
    let mut points = Vec::new();
    println!("| inputs k | tokens w | k·w | wall ms per pass (median) | CPU ms per pass | CPU ms per input |");
    println!("|---|---|---|---|---|---|");
    for k in [1, 2, 4, 8, 16] {
        for w in [8, 16, 32, 64] {
            let (wall, cpu) = pass_ms(&analyzer, k, w)?;
            println!(
                "| {k} | {w} | {} | {wall:.2} | {cpu:.2} | {:.2} |",
                k * w,
                cpu / k as f64
            );
            if k * w <= FIT_MAX_TOKENS {
                points.push(((k * w) as f64, cpu));
            }
        }
    }
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let b = sxy / sxx;
    let a = my - b * mx;
    println!(
        "fit: CPU ms per pass = {a:.2} + {b:.4} * k * w; fixed part {:.0} tokens (passes of up to {FIT_MAX_TOKENS} tokens; {})",
        a / b,
        machine()
    );
    Ok(())
}
