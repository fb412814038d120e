//! The `parameters` object of a request: which heads answer (`task_type`) and how the
//! generation head samples. Absent fields are left out, so the server's defaults apply.

use serde::Serialize;

/// A request's parameters; build with the chained setters.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Parameters {
    /// Heads to answer, by name, kind or task; empty: every head.
    #[serde(rename = "task_type", skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<String>,
    /// Most generated tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// Sampling temperature (0: greedy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Sample among the k most likely tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    /// Seed of the sampler.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Parameters {
    /// Also answer this head (name, kind or task).
    pub fn task(mut self, task: impl Into<String>) -> Self {
        self.tasks.push(task.into());
        self
    }

    /// Generate at most `n` tokens.
    pub fn max_tokens(mut self, n: usize) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// The object as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_set_fields_are_sent() {
        assert_eq!(Parameters::default().to_json(), serde_json::json!({}));
        let p = Parameters::default().task("sentiment").task("captioning").max_tokens(4);
        assert_eq!(p.to_json(), serde_json::json!({"task_type": ["sentiment", "captioning"], "max_tokens": 4}));
    }
}
