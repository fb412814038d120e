//! The server's answers, typed: an inference [`Response`] (each asked head's result, the
//! inputs as the model saw them, the time per layer — the JSON of `omnifuse run --json`) and
//! a [`SearchResult`]. They serialise back to the same JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One request's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Model name.
    pub model: String,
    /// Backend that ran it.
    pub backend: String,
    /// Each input, in request order.
    pub inputs: Vec<InputSummary>,
    /// Each asked head's result, by head name.
    pub heads: BTreeMap<String, HeadResult>,
    /// Milliseconds per layer.
    pub timing_ms: Timing,
}

/// An input as the model saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSummary {
    /// Detected modality (`text`, `image`, `audio`, `video`).
    pub modality: String,
    /// Tokens it gave the fusion layer.
    pub tokens: usize,
}

/// A head's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum HeadResult {
    /// Classification.
    Classification {
        /// The most probable label.
        label: String,
        /// All labels.
        labels: Vec<String>,
        /// Their probabilities.
        probabilities: Vec<f32>,
    },
    /// Retrieval embeddings (L2-normalised).
    Retrieval {
        /// The whole request's embedding.
        fused: Vec<f32>,
        /// One embedding per input.
        inputs: Vec<Vec<f32>>,
        /// With an index: per input, the most similar entries of other modalities.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matches: Option<Vec<Vec<Match>>>,
    },
    /// Generated text.
    Generation {
        /// Token ids.
        tokens: Vec<i32>,
        /// Their text.
        text: String,
        /// Each token's log-probability.
        logprobs: Vec<f32>,
    },
}

/// Milliseconds spent per layer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Detection, decoding and preprocessing.
    pub preprocess: f64,
    /// Encoding, per modality.
    pub encode: BTreeMap<String, f64>,
    /// Fusion.
    pub fuse: f64,
    /// Per head.
    pub heads: BTreeMap<String, f64>,
    /// The whole request.
    pub total: f64,
}

/// An indexed entry found by a search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// The entry's key.
    pub key: String,
    /// The entry's modality.
    pub modality: String,
    /// Cosine similarity with the query.
    pub score: f32,
}

/// The answer of `/v1/search`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    /// The index searched.
    pub index: String,
    /// The best matches, best first.
    pub matches: Vec<Match>,
}
