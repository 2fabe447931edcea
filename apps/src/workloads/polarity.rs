//! `neural_analyzer.polarity(sentence)`: sentence polarity from the all-MiniLM-L6-v2 network,
//! run in batches of the calls already waiting.

use std::path::Path;

use neural::{Analyzer, LoadError, PolarityError};
use rpc_core::RpcError;

/// The most sentences one forward pass takes: the consumer's default, chosen on measurement
/// (docs/benchmarks.md, "Neural batching"): 8 gets most of the gain (1.76x less CPU per
/// sentence than one at a time); 16 and 32 save 8% and 13% more while a batch's own latency
/// grows from about 49 ms to 91 and 173 ms.
pub const MAX_BATCH: usize = 8;

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
    /// A batch procedure: the calls waiting when a worker frees up (up to `MAX_BATCH`) run
    /// as padded forward passes over sentences of similar length; each caller gets its own
    /// answer. A call given up before its batch started is left out of it.
    ///
    /// # Errors
    /// `bad arguments` for an empty sentence (that call alone).
    #[batch(max = MAX_BATCH, param = "sentence")]
    pub fn polarity(&self, sentences: Vec<String>) -> Vec<Result<f32, RpcError>> {
        self.analyzer
            .polarity_batch(&sentences)
            .into_iter()
            .map(|result| {
                result.map_err(|err| match err {
                    PolarityError::Empty => {
                        RpcError::BadArguments("parameter `sentence`: must not be empty".into())
                    }
                    other => RpcError::Failed(other.to_string()),
                })
            })
            .collect()
    }
}
