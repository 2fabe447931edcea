//! `neural_analyzer.polarity(sentence)`: sentence polarity from the all-MiniLM-L6-v2 network.

use std::path::Path;

use neural::{Analyzer, LoadError};
use rpc_core::{Cancellation, RpcError};

/// Sentence polarity on request: the seed's "work with a neural network", run on this
/// consumer's CPU. The handler owns the model, loaded by [`NeuralAnalyzer::load`].
#[derive(Debug)]
pub struct NeuralAnalyzer {
    analyzer: Analyzer,
}

impl NeuralAnalyzer {
    /// Loads the model from `dir`.
    ///
    /// # Errors
    /// The model files are missing (the error names the command that fetches them) or broken.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        Ok(Self {
            analyzer: Analyzer::load(dir)?,
        })
    }
}

#[rpc_core::handler]
impl NeuralAnalyzer {
    /// The polarity of `sentence` in [-1, 1]: below zero negative, above zero positive.
    /// Input longer than the model's window is truncated.
    ///
    /// # Errors
    /// `bad arguments` for an empty sentence; `cancelled` or `deadline exceeded` when the call
    /// was given up before the network ran.
    pub fn polarity(&self, sentence: String, cancel: Cancellation) -> Result<f32, RpcError> {
        if sentence.trim().is_empty() {
            return Err(RpcError::BadArguments(
                "parameter `sentence`: must not be empty".into(),
            ));
        }
        cancel.check()?;
        self.analyzer
            .polarity(&sentence)
            .map_err(|e| RpcError::Failed(e.to_string()))
    }
}
