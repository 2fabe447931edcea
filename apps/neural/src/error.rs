//! The two ways the analyzer fails: loading, and scoring one sentence.

use std::path::PathBuf;

/// Why [`Analyzer::load`](crate::Analyzer::load) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// One or more model files are not in the directory.
    #[error(
        "model files missing in {}: {files}; run {} to fetch them \
         (or set {} to a directory that has them)",
        dir.display(),
        crate::FETCH_COMMAND,
        crate::MODEL_DIR_ENV
    )]
    Missing {
        /// The directory that was searched.
        dir: PathBuf,
        /// The missing file names, comma-separated.
        files: String,
    },
    /// A model file exists but could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `config.json` is not a BERT configuration.
    #[error("bad model config {}: {source}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// `tokenizer.json` could not be loaded or configured.
    #[error("bad tokenizer {}: {message}", path.display())]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// The tokenizer library's message.
        message: String,
    },
    /// The weights could not be mapped or do not fit the configuration.
    #[error(
        "bad model weights {}: {source}; delete the directory and run {}",
        path.display(),
        crate::FETCH_COMMAND
    )]
    Model {
        /// The weights file.
        path: PathBuf,
        /// candle's error.
        source: candle_core::Error,
    },
    /// The polarity head (`data/head.json`) is malformed.
    #[error("bad polarity head: {0}")]
    Head(String),
}

/// Why one sentence could not be scored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolarityError {
    /// The text is empty, whitespace only, or has no character the tokenizer keeps.
    #[error("sentence is empty")]
    Empty,
    /// The tokenizer failed on the text.
    #[error("cannot tokenize sentence: {0}")]
    Tokenize(String),
    /// The network failed (a bug or a corrupt model, not bad input).
    #[error("neural network failed: {0}")]
    Model(#[from] candle_core::Error),
}
