//! What a request returns: each head's result, the inputs as the model saw them, and the
//! time spent per layer — as JSON (`--json`) or as a short human-readable report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::input::Modality;

/// One request's answer.
#[derive(Clone, Debug, Serialize)]
pub struct Response {
    /// Model name.
    pub model: String,
    /// Backend that ran it.
    pub backend: String,
    /// Each input in request order.
    pub inputs: Vec<InputSummary>,
    /// Each asked head's result, by head name.
    pub heads: BTreeMap<String, HeadResult>,
    /// Time per layer.
    pub timing_ms: Timing,
}

/// An input as the model saw it.
#[derive(Clone, Debug, Serialize)]
pub struct InputSummary {
    /// Detected modality.
    pub modality: Modality,
    /// Tokens it gave the fusion layer.
    pub tokens: usize,
}

/// A head's result.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum HeadResult {
    /// Classification.
    Classification {
        /// The most probable label.
        label: String,
        /// All labels, in config order.
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
        /// With an index: per input, the most similar indexed entries of other modalities.
        #[serde(skip_serializing_if = "Option::is_none")]
        matches: Option<Vec<Vec<crate::index::Match>>>,
    },
    /// Generated text.
    Generation {
        /// Token ids.
        tokens: Vec<i32>,
        /// Their text (invalid UTF-8 replaced).
        text: String,
        /// Each token's log-probability.
        logprobs: Vec<f32>,
    },
}

/// Milliseconds spent per layer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timing {
    /// Detection, decoding and preprocessing of all inputs.
    pub preprocess: f64,
    /// Layer 1, per modality (all inputs of a modality summed).
    pub encode: BTreeMap<String, f64>,
    /// Layer 2.
    pub fuse: f64,
    /// Layer 3, per head.
    pub heads: BTreeMap<String, f64>,
    /// The whole request.
    pub total: f64,
}

impl Response {
    /// A short report for people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let inputs: Vec<String> =
            self.inputs.iter().map(|i| format!("{} ({} tokens)", i.modality.name(), i.tokens)).collect();
        let _ = writeln!(s, "{} on {}: {}", self.model, self.backend, inputs.join(", "));
        for (name, r) in &self.heads {
            match r {
                HeadResult::Classification { label, labels, probabilities } => {
                    let p: Vec<String> =
                        labels.iter().zip(probabilities).map(|(l, p)| format!("{l} {:.3}", p)).collect();
                    let _ = writeln!(s, "  {name}: {label}  ({})", p.join(", "));
                }
                HeadResult::Retrieval { fused, inputs, matches } => {
                    let head: Vec<String> = fused.iter().take(4).map(|v| format!("{v:+.3}")).collect();
                    let _ = writeln!(
                        s,
                        "  {name}: {}-d embedding of the request [{} …] and of each of {} input(s)",
                        fused.len(),
                        head.join(" "),
                        inputs.len()
                    );
                    for (i, hits) in matches.iter().flatten().enumerate() {
                        let h: Vec<String> =
                            hits.iter().map(|m| format!("{} ({}) {:.3}", m.key, m.modality, m.score)).collect();
                        let _ = writeln!(
                            s,
                            "    input {i} → {}",
                            if h.is_empty() { "no match".into() } else { h.join(", ") }
                        );
                    }
                }
                HeadResult::Generation { tokens, text, .. } => {
                    let _ = writeln!(s, "  {name}: {text:?} ({} tokens)", tokens.len());
                }
            }
        }
        let t = &self.timing_ms;
        let enc: Vec<String> = t.encode.iter().map(|(m, v)| format!("{m} {v:.1}")).collect();
        let heads: Vec<String> = t.heads.iter().map(|(m, v)| format!("{m} {v:.1}")).collect();
        let _ = writeln!(
            s,
            "  time (ms): preprocess {:.1} | encode {} | fuse {:.1} | heads {} | total {:.1}",
            t.preprocess,
            enc.join(", "),
            t.fuse,
            heads.join(", "),
            t.total
        );
        s
    }
}
