//! Fits the polarity head (`data/head.json`) on the VADER lexicon's human-rated valences.
//!
//! Run by hand, never in tests or CI: `apps/neural/scripts/train_head.sh` fetches the
//! `vaderSentiment` wheel with pip into a temporary directory and runs this program on its
//! `vader_lexicon.txt`. The result is committed.
//!
//! ```text
//! train_head --lexicon vader_lexicon.txt [--model-dir DIR] [--dev data/dev_sentences.tsv]
//!            [--out data/head.json] [--cache /tmp/lexicon.emb] [--neutral 8000]
//! ```
//!
//! What it does: embeds every lexicon entry (a word, emoticon or short phrase) and the
//! `--neutral` most common whole words of the model's vocabulary that the lexicon leaves
//! unrated (VADER scores those 0), fits ridge regressions onto `atanh(valence / 4)` for a
//! range of penalties, and prints the 5-fold cross-validated fit on the lexicon and, for each
//! candidate head (ridge fits, word centroids, anchor phrases), the sign accuracy and score
//! ranges on the hand-written dev sentences (`data/dev_sentences.tsv`). The head it writes is
//! the ridge fit whose penalty had the best cross-validated R²; the rest is evidence. The
//! accuracy test's sentences (`data/labeled_sentences.tsv`) are never read here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use neural::{Analyzer, Head, EMBEDDING_DIM};

/// Ridge penalties tried; the best by cross-validated R² is kept.
const LAMBDAS: [f64; 8] = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0];
/// Targets are clamped to this before `atanh`, so a ±4 rating stays finite.
const TARGET_LIMIT: f64 = 0.95;
/// Unrated vocabulary words added at valence 0 unless `--neutral N` says otherwise: with
/// them the head keeps plain statements nearer 0 (see the crate docs for the figures).
const NEUTRAL_WORDS: usize = 8000;
/// Folds of the cross-validation.
const FOLDS: usize = 5;

struct Args {
    lexicon: PathBuf,
    model_dir: PathBuf,
    dev: PathBuf,
    out: PathBuf,
    cache: Option<PathBuf>,
    neutral: usize,
}

fn parse_args() -> Result<Args, String> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut lexicon = None;
    let mut model_dir = neural::default_model_dir();
    let mut dev = crate_dir.join("data/dev_sentences.tsv");
    let mut out = crate_dir.join("data/head.json");
    let mut cache = None;
    let mut neutral = NEUTRAL_WORDS;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--lexicon" => lexicon = Some(PathBuf::from(value()?)),
            "--model-dir" => model_dir = PathBuf::from(value()?),
            "--dev" => dev = PathBuf::from(value()?),
            "--out" => out = PathBuf::from(value()?),
            "--cache" => cache = Some(PathBuf::from(value()?)),
            "--neutral" => {
                let v = value()?;
                neutral = v.parse().map_err(|e| format!("--neutral {v:?}: {e}"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        lexicon: lexicon.ok_or("--lexicon PATH is required")?,
        model_dir,
        dev,
        out,
        cache,
        neutral,
    })
}

/// One lexicon entry: the text and its mean valence scaled to [-1, 1].
struct Entry {
    text: String,
    valence: f64,
}

fn read_lexicon(path: &Path) -> Result<Vec<Entry>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut entries = Vec::new();
    for line in text.lines() {
        let mut cols = line.split('\t');
        let (Some(word), Some(mean)) = (cols.next(), cols.next()) else {
            continue;
        };
        let Ok(mean) = mean.trim().parse::<f64>() else {
            continue;
        };
        if word.trim().is_empty() {
            continue;
        }
        entries.push(Entry {
            text: word.to_string(),
            valence: mean / 4.0,
        });
    }
    Ok(entries)
}

/// The label of a dev sentence.
enum Label {
    Pos,
    Neg,
    Neu,
}

fn read_labeled(path: &Path) -> Result<Vec<(Label, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (label, sentence) = match line.split_once('\t') {
            Some(("pos", s)) => (Label::Pos, s),
            Some(("neg", s)) => (Label::Neg, s),
            Some(("neu", s)) => (Label::Neu, s),
            _ => return Err(format!("{}: bad line {line:?}", path.display())),
        };
        out.push((label, sentence.to_string()));
    }
    Ok(out)
}

/// Embeds every entry, reading and writing a flat f32 cache keyed by the entry texts.
fn embed_all(
    analyzer: &Analyzer,
    texts: &[String],
    cache: Option<&Path>,
) -> Result<Vec<Vec<f32>>, String> {
    if let Some(path) = cache {
        if let Ok(bytes) = std::fs::read(path) {
            let floats: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if floats.len() == texts.len() * EMBEDDING_DIM {
                eprintln!("using cached embeddings from {}", path.display());
                return Ok(floats
                    .chunks_exact(EMBEDDING_DIM)
                    .map(<[f32]>::to_vec)
                    .collect());
            }
        }
    }
    let started = std::time::Instant::now();
    let mut all = Vec::with_capacity(texts.len());
    for (i, t) in texts.iter().enumerate() {
        all.push(
            analyzer
                .embed(t)
                .map_err(|e| format!("embedding {t:?}: {e}"))?,
        );
        if (i + 1) % 1000 == 0 {
            eprintln!(
                "embedded {}/{} ({:.0?})",
                i + 1,
                texts.len(),
                started.elapsed()
            );
        }
    }
    if let Some(path) = cache {
        let bytes: Vec<u8> = all.iter().flatten().flat_map(|f| f.to_le_bytes()).collect();
        std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(all)
}

/// Ridge regression with an unpenalised intercept: returns (weights, bias).
fn ridge(xs: &[&[f32]], ys: &[f64], lambda: f64) -> Result<(Vec<f64>, f64), String> {
    let d = EMBEDDING_DIM;
    let n = xs.len() as f64;
    let mut mean_x = vec![0.0; d];
    for x in xs {
        for (m, v) in mean_x.iter_mut().zip(x.iter()) {
            *m += f64::from(*v) / n;
        }
    }
    let mean_y = ys.iter().sum::<f64>() / n;
    let mut a = vec![0.0; d * d];
    let mut b = vec![0.0; d];
    let mut row = vec![0.0; d];
    for (x, y) in xs.iter().zip(ys) {
        for (r, (v, m)) in row.iter_mut().zip(x.iter().zip(&mean_x)) {
            *r = f64::from(*v) - m;
        }
        let yc = y - mean_y;
        for i in 0..d {
            b[i] += row[i] * yc;
            let ri = row[i];
            for j in 0..=i {
                a[i * d + j] += ri * row[j];
            }
        }
    }
    for i in 0..d {
        a[i * d + i] += lambda;
    }
    let w = cholesky_solve(&mut a, &b, d)?;
    let bias = mean_y - w.iter().zip(&mean_x).map(|(w, m)| w * m).sum::<f64>();
    Ok((w, bias))
}

/// Solves `A w = b` for a symmetric positive definite `A` whose lower triangle is filled.
fn cholesky_solve(a: &mut [f64], b: &[f64], d: usize) -> Result<Vec<f64>, String> {
    for j in 0..d {
        let mut s = a[j * d + j];
        for k in 0..j {
            s -= a[j * d + k] * a[j * d + k];
        }
        if s <= 0.0 {
            return Err("matrix not positive definite".into());
        }
        let l = s.sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = s / l;
        }
    }
    let mut z = vec![0.0; d];
    for i in 0..d {
        let s: f64 = (0..i).map(|k| a[i * d + k] * z[k]).sum();
        z[i] = (b[i] - s) / a[i * d + i];
    }
    let mut w = vec![0.0; d];
    for i in (0..d).rev() {
        let s: f64 = (i + 1..d).map(|k| a[k * d + i] * w[k]).sum();
        w[i] = (z[i] - s) / a[i * d + i];
    }
    Ok(w)
}

fn dot(w: &[f64], x: &[f32]) -> f64 {
    w.iter().zip(x).map(|(w, x)| w * f64::from(*x)).sum()
}

/// 5-fold cross-validation of a ridge fit: (R² of tanh(prediction) against valence, sign
/// agreement on entries with |valence| >= 0.25).
fn cross_validate(xs: &[&[f32]], valence: &[f64], lambda: f64) -> Result<(f64, f64), String> {
    let n = xs.len();
    // A fixed shuffle, so the folds are not alphabetical runs of the lexicon.
    let mut order: Vec<usize> = (0..n).collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..n).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        order.swap(i, (state >> 33) as usize % (i + 1));
    }
    let (mut sse, mut sst, mut agree, mut counted) = (0.0, 0.0, 0usize, 0usize);
    let mean_v = valence.iter().sum::<f64>() / n as f64;
    for fold in 0..FOLDS {
        let test: Vec<usize> = order.iter().copied().skip(fold).step_by(FOLDS).collect();
        let is_test: Vec<bool> = {
            let mut v = vec![false; n];
            for &i in &test {
                v[i] = true;
            }
            v
        };
        let tx: Vec<&[f32]> = (0..n).filter(|i| !is_test[*i]).map(|i| xs[i]).collect();
        let ty: Vec<f64> = (0..n)
            .filter(|i| !is_test[*i])
            .map(|i| target(valence[i]))
            .collect();
        let (w, b) = ridge(&tx, &ty, lambda)?;
        for &i in &test {
            let p = (dot(&w, xs[i]) + b).tanh();
            sse += (p - valence[i]).powi(2);
            sst += (valence[i] - mean_v).powi(2);
            if valence[i].abs() >= 0.25 {
                counted += 1;
                if (p > 0.0) == (valence[i] > 0.0) {
                    agree += 1;
                }
            }
        }
    }
    Ok((1.0 - sse / sst, agree as f64 / counted.max(1) as f64))
}

fn target(valence: f64) -> f64 {
    valence.clamp(-TARGET_LIMIT, TARGET_LIMIT).atanh()
}

/// Sign accuracy of a linear head on labeled sentence embeddings.
fn sign_accuracy(w: &[f64], b: f64, dev: &[(bool, Vec<f32>)]) -> f64 {
    let ok = dev
        .iter()
        .filter(|(pos, e)| (dot(w, e) + b > 0.0) == *pos)
        .count();
    ok as f64 / dev.len().max(1) as f64
}

/// A head from two anchors: the direction from the negative to the positive anchor, with the
/// decision boundary halfway between them and a scale that maps the anchors to ±`reach`.
fn anchored(pos: &[f64], neg: &[f64], reach: f64) -> (Vec<f64>, f64) {
    let w: Vec<f64> = pos.iter().zip(neg).map(|(p, n)| p - n).collect();
    let mid: Vec<f64> = pos.iter().zip(neg).map(|(p, n)| (p + n) / 2.0).collect();
    let half_gap: f64 = w.iter().map(|x| x * x).sum::<f64>() / 2.0;
    let scale = reach.atanh() / half_gap.max(1e-9);
    let w: Vec<f64> = w.iter().map(|x| x * scale).collect();
    let b = -w.iter().zip(&mid).map(|(w, m)| w * m).sum::<f64>();
    (w, b)
}

fn mean_of(rows: &[&[f32]]) -> Vec<f64> {
    let mut m = vec![0.0; EMBEDDING_DIM];
    for r in rows {
        for (a, v) in m.iter_mut().zip(r.iter()) {
            *a += f64::from(*v) / rows.len() as f64;
        }
    }
    m
}

/// The hand-written dev sentences, embedded.
struct Dev {
    /// (is positive, embedding) for the pos and neg lines.
    signed: Vec<(bool, Vec<f32>)>,
    /// Embeddings of the neu lines.
    neutral: Vec<Vec<f32>>,
}

impl Dev {
    /// Prints sign accuracy, mean score of positive and negative sentences, and mean |score|
    /// of the neutral ones, for the head `tanh(w.e + b)`; returns the accuracy.
    fn report(&self, name: &str, w: &[f64], b: f64) -> f64 {
        let acc = sign_accuracy(w, b, &self.signed);
        let mean = |pos: bool| {
            let s: Vec<f64> = self
                .signed
                .iter()
                .filter(|(p, _)| *p == pos)
                .map(|(_, e)| (dot(w, e) + b).tanh())
                .collect();
            s.iter().sum::<f64>() / s.len().max(1) as f64
        };
        let neutral = self
            .neutral
            .iter()
            .map(|e| (dot(w, e) + b).tanh().abs())
            .sum::<f64>()
            / self.neutral.len().max(1) as f64;
        println!(
            "{name:<48} {acc:7.3}  {:+7.3}  {:+7.3}  {neutral:7.3}",
            mean(true),
            mean(false)
        );
        acc
    }
}

/// Common whole words of the model's own vocabulary that the lexicon does not rate: VADER
/// scores a word it has no rating for as 0, so these are its neutral words.
fn neutral_words(model_dir: &Path, rated: &[Entry], count: usize) -> Result<Vec<String>, String> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let path = model_dir.join("tokenizer.json");
    let tokenizer = tokenizers::Tokenizer::from_file(&path).map_err(|e| e.to_string())?;
    let rated: std::collections::HashSet<String> =
        rated.iter().map(|e| e.text.to_lowercase()).collect();
    let mut vocab: Vec<(String, u32)> = tokenizer.get_vocab(false).into_iter().collect();
    // BERT's vocabulary lists whole words roughly by frequency after the single characters.
    vocab.sort_by_key(|(_, id)| *id);
    Ok(vocab
        .into_iter()
        .map(|(w, _)| w)
        .filter(|w| w.len() >= 4 && w.bytes().all(|c| c.is_ascii_lowercase()))
        .filter(|w| !rated.contains(w))
        .take(count)
        .collect())
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let analyzer = Analyzer::load(&args.model_dir).map_err(|e| e.to_string())?;
    let mut entries = read_lexicon(&args.lexicon)?;
    let rated = entries.len();
    let neutral = neutral_words(&args.model_dir, &entries, args.neutral)?;
    eprintln!(
        "{rated} lexicon entries, {} neutral vocabulary words",
        neutral.len()
    );
    entries.extend(neutral.into_iter().map(|text| Entry { text, valence: 0.0 }));
    // Cached in two parts, so trying another neutral count does not embed the lexicon again.
    let texts: Vec<String> = entries.iter().map(|e| e.text.clone()).collect();
    let neutral_cache = args.cache.as_ref().map(|c| {
        let mut name = c.clone().into_os_string();
        name.push(format!(".neutral{}", texts.len() - rated));
        PathBuf::from(name)
    });
    let mut embeddings = embed_all(&analyzer, &texts[..rated], args.cache.as_deref())?;
    embeddings.extend(embed_all(
        &analyzer,
        &texts[rated..],
        neutral_cache.as_deref(),
    )?);
    let xs: Vec<&[f32]> = embeddings.iter().map(Vec::as_slice).collect();
    let valence: Vec<f64> = entries.iter().map(|e| e.valence).collect();

    let mut dev = Dev {
        signed: Vec::new(),
        neutral: Vec::new(),
    };
    for (label, sentence) in read_labeled(&args.dev)? {
        let e = analyzer.embed(&sentence).map_err(|e| e.to_string())?;
        match label {
            Label::Pos => dev.signed.push((true, e)),
            Label::Neg => dev.signed.push((false, e)),
            Label::Neu => dev.neutral.push(e),
        }
    }
    eprintln!(
        "{} dev sentences with a sign, {} neutral",
        dev.signed.len(),
        dev.neutral.len()
    );

    println!("lexicon 5-fold CV of the ridge fits (R2 of tanh(score) against valence/4, sign):");
    let ys: Vec<f64> = valence.iter().map(|v| target(*v)).collect();
    let mut best: Option<(f64, f64)> = None; // (lambda, r2)
    for lambda in LAMBDAS {
        let (r2, sign) = cross_validate(&xs[..rated], &valence[..rated], lambda)?;
        println!("  lambda {lambda:<5}  R2 {r2:6.3}  sign {sign:6.3}");
        if best.is_none_or(|(_, r)| r2 > r) {
            best = Some((lambda, r2));
        }
    }
    let (lambda, r2) = best.ok_or("no lambda tried")?;

    println!();
    println!(
        "dev sentences: candidate                          accuracy  mean+   mean-  |neutral|"
    );
    for l in LAMBDAS {
        let (w, b) = ridge(&xs, &ys, l)?;
        dev.report(&format!("ridge, lambda {l}"), &w, b);
    }
    // Evidence for the alternatives: centroids of the clearly rated words, and anchor phrases.
    // Both are linear heads of the same shape.
    let strong = |keep: fn(f64) -> bool| -> Vec<&[f32]> {
        xs[..rated]
            .iter()
            .zip(&valence)
            .filter(|(_, v)| keep(**v))
            .map(|(x, _)| *x)
            .collect()
    };
    let (pos, neg) = (strong(|v| v >= 0.5), strong(|v| v <= -0.5));
    let (w, b) = anchored(&mean_of(&pos), &mean_of(&neg), 0.8);
    dev.report(
        &format!("centroids, |valence| >= 2 ({}+/{}-)", pos.len(), neg.len()),
        &w,
        b,
    );
    for (p, n) in [
        ("This is good.", "This is bad."),
        ("I love it, it is wonderful.", "I hate it, it is terrible."),
        ("positive", "negative"),
    ] {
        let embed = |s: &str| -> Result<Vec<f64>, String> {
            Ok(analyzer
                .embed(s)
                .map_err(|e| e.to_string())?
                .iter()
                .map(|v| f64::from(*v))
                .collect())
        };
        let (w, b) = anchored(&embed(p)?, &embed(n)?, 0.8);
        dev.report(&format!("anchors {p:?}/{n:?}"), &w, b);
    }

    let (w, b) = ridge(&xs, &ys, lambda)?;
    let about = format!(
        "Ridge regression (lambda {lambda} chosen by 5-fold CV R2 {r2:.3}; unpenalised bias) \
         from all-MiniLM-L6-v2 sentence embeddings onto atanh(clamp(valence/4, -{TARGET_LIMIT}, \
         {TARGET_LIMIT})) for the {rated} entries of vader_lexicon.txt (vaderSentiment 3.3.2) \
         plus {} common unrated vocabulary words at valence 0; score = tanh(w.e + b). \
         Dev sentence sign accuracy {:.3}. Written by apps/neural/src/bin/train_head.rs.",
        entries.len() - rated,
        sign_accuracy(&w, b, &dev.signed)
    );
    let head = Head::new(about, w.iter().map(|v| *v as f32).collect(), b as f32)
        .map_err(|e| e.to_string())?;
    std::fs::write(&args.out, head.to_json() + "\n")
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    println!("wrote {} (lambda {lambda})", args.out.display());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("train_head: {e}");
            ExitCode::FAILURE
        }
    }
}
