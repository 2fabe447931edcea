//! `neural_analyzer.polarity(sentence)`: sentence polarity from the all-MiniLM-L6-v2 network.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use neural::{Analyzer, LoadError};
use rpc_core::RpcError;

static ANALYZER: OnceLock<Arc<Analyzer>> = OnceLock::new();

/// Sentence polarity on request: the seed's "work with a neural network", run on this
/// consumer's CPU. The model is loaded once per process, by [`NeuralAnalyzer::load`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NeuralAnalyzer;

impl NeuralAnalyzer {
    /// Loads the model from `dir` for every later call in this process (once: a second call
    /// keeps the first model).
    ///
    /// # Errors
    /// The model files are missing (the error names the command that fetches them) or broken.
    pub fn load(dir: &Path) -> Result<(), LoadError> {
        if ANALYZER.get().is_none() {
            let analyzer = Analyzer::load(dir)?;
            let _ = ANALYZER.set(Arc::new(analyzer));
        }
        Ok(())
    }

    /// Whether [`NeuralAnalyzer::load`] has succeeded in this process.
    pub fn is_loaded() -> bool {
        ANALYZER.get().is_some()
    }
}

#[rpc_core::handler]
impl NeuralAnalyzer {
    /// The polarity of `sentence` in [-1, 1]: below zero negative, above zero positive.
    /// Input longer than the model's window is truncated.
    ///
    /// # Errors
    /// `bad arguments` for an empty sentence; `failed` when this consumer has no model.
    pub fn polarity(sentence: String) -> Result<f32, RpcError> {
        if sentence.trim().is_empty() {
            return Err(RpcError::BadArguments(
                "parameter `sentence`: must not be empty".into(),
            ));
        }
        let analyzer = ANALYZER.get().ok_or_else(|| {
            RpcError::Failed(
                "this consumer has no model loaded (see ./scripts/fetch_model.sh)".into(),
            )
        })?;
        analyzer
            .polarity(&sentence)
            .map_err(|e| RpcError::Failed(e.to_string()))
    }
}
