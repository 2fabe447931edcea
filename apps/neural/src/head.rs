//! The polarity head: a linear map from a sentence embedding to a score in [-1, 1].

use serde::{Deserialize, Serialize};

use crate::{LoadError, EMBEDDING_DIM};

/// A linear polarity head: `tanh(weights · embedding + bias)`.
///
/// Fitted by `src/bin/train_head.rs` and stored as JSON in `data/head.json`; the `about`
/// field says what it was trained on. Holding it as a type of its own lets the training
/// program write the same file that [`Analyzer::load`](crate::Analyzer::load) reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Head {
    /// What the head was fitted on and how, for the reader of the JSON file.
    about: String,
    /// One weight per embedding dimension.
    weights: Vec<f32>,
    /// Added to the dot product before the squash.
    bias: f32,
}

impl Head {
    /// Builds a head from its weights and bias.
    ///
    /// # Errors
    ///
    /// [`LoadError::Head`] when there are not [`EMBEDDING_DIM`] weights or a number is not
    /// finite.
    pub fn new(about: String, weights: Vec<f32>, bias: f32) -> Result<Head, LoadError> {
        if weights.len() != EMBEDDING_DIM {
            return Err(LoadError::Head(format!(
                "{} weights, expected {EMBEDDING_DIM}",
                weights.len()
            )));
        }
        if !bias.is_finite() || weights.iter().any(|w| !w.is_finite()) {
            return Err(LoadError::Head("a weight is not a finite number".into()));
        }
        Ok(Head {
            about,
            weights,
            bias,
        })
    }

    /// Parses and checks a head from its JSON form (`{"about", "weights", "bias"}`).
    ///
    /// # Errors
    ///
    /// [`LoadError::Head`] when the JSON is malformed or fails the checks of [`Head::new`].
    pub fn from_json(json: &str) -> Result<Head, LoadError> {
        let raw: Head = serde_json::from_str(json).map_err(|e| LoadError::Head(e.to_string()))?;
        Head::new(raw.about, raw.weights, raw.bias)
    }

    /// Returns the head as pretty-printed JSON, the form `data/head.json` holds.
    pub fn to_json(&self) -> String {
        // A struct of a string, finite floats and a float vector always serialises.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// What the head was fitted on and how (the JSON file's `about`).
    pub fn about(&self) -> &str {
        &self.about
    }

    /// The weights, one per embedding dimension.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// The bias.
    pub fn bias(&self) -> f32 {
        self.bias
    }

    /// The raw linear score `weights · embedding + bias`, before the squash.
    pub fn linear(&self, embedding: &[f32]) -> f32 {
        self.weights
            .iter()
            .zip(embedding)
            .map(|(w, x)| w * x)
            .sum::<f32>()
            + self.bias
    }

    /// The polarity of an embedding: `tanh` of [`linear`](Head::linear), within [-1, 1].
    pub fn score(&self, embedding: &[f32]) -> f32 {
        let s = self.linear(embedding).tanh();
        // tanh of a finite number is within [-1, 1]; NaN cannot come from finite inputs.
        if s.is_nan() {
            0.0
        } else {
            s.clamp(-1.0, 1.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_length_is_refused() {
        assert!(Head::new(String::new(), vec![0.0; 3], 0.0).is_err());
    }

    #[test]
    fn score_is_within_bounds() {
        let head = Head::new(String::new(), vec![100.0; EMBEDDING_DIM], 5.0).unwrap();
        let s = head.score(&[1.0; EMBEDDING_DIM]);
        assert!((-1.0..=1.0).contains(&s));
        let back = Head::from_json(&head.to_json()).unwrap();
        assert_eq!(back.bias(), 5.0);
    }
}
