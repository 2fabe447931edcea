//! Sentence polarity from a real neural network. Being built (issue 5).
