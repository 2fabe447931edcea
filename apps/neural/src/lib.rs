//! Sentence polarity from a real neural network. Being built (issue 5).
use candle_core as _;
use candle_nn as _;
use candle_transformers as _;
use tokenizers as _;
