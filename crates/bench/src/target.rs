//! What the harness measures: a [`Target`] runs a batch of requests and answers each with its
//! per-stage timings. The in-process model is one target ([`ModelTarget`]); a remote server
//! reached through an HTTP client can be another. Scenarios know nothing else about it.

use std::collections::BTreeMap;
use std::sync::Arc;

use omnifuse_model::Model;
use omnifuse_model::input::RawInput;
use omnifuse_model::request::Parameters;

use crate::workload::Request;

/// What one request cost, as the target saw it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Completion {
    /// Milliseconds per stage (`preprocess`, `encode.<modality>`, `fuse`, `head.<name>`,
    /// `total`); empty when the target does not say.
    pub stages_ms: BTreeMap<String, f64>,
    /// Feature-cache lookups charged to this request as (hits, lookups); `None` when the
    /// target has no cache or does not say. A target may charge a whole batch's lookups to
    /// one of its requests: only the sums over a run are meaningful.
    pub cache: Option<(u64, u64)>,
}

/// The stage names of [`Completion::stages_ms`] from a response's timings (milliseconds).
pub fn stage_map(
    preprocess: f64,
    encode: &BTreeMap<String, f64>,
    fuse: f64,
    heads: &BTreeMap<String, f64>,
    total: f64,
) -> BTreeMap<String, f64> {
    let mut stages = BTreeMap::new();
    stages.insert("preprocess".to_string(), preprocess);
    stages.extend(encode.iter().map(|(m, v)| (format!("encode.{m}"), *v)));
    stages.insert("fuse".to_string(), fuse);
    stages.extend(heads.iter().map(|(h, v)| (format!("head.{h}"), *v)));
    stages.insert("total".to_string(), total);
    stages
}

/// Something that answers batches of requests. One call runs one batch; answers come back in
/// request order, one per request (a failed request fails alone).
pub trait Target: Send + Sync {
    /// A short description (model, backend) for reports.
    fn describe(&self) -> String;
    /// Run `batch`.
    fn run_batch(&self, batch: &[&Request]) -> Vec<Result<Completion, String>>;
}

/// The in-process model, answering with the parameters given here.
pub struct ModelTarget {
    model: Arc<Model>,
    params: Parameters,
}

impl ModelTarget {
    /// Run `model` with `params` for every request.
    pub fn new(model: Arc<Model>, params: Parameters) -> Self {
        ModelTarget { model, params }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }
}

impl Target for ModelTarget {
    fn describe(&self) -> String {
        format!("{} on {}", self.model.config().model.name, self.model.backend_name())
    }

    fn run_batch(&self, batch: &[&Request]) -> Vec<Result<Completion, String>> {
        let jobs: Vec<(&[RawInput], &Parameters)> = batch.iter().map(|r| (r.as_slice(), &self.params)).collect();
        // The batch's cache lookups, charged to its first request (batches run one at a time
        // on the batcher's worker, so the counters move for this batch only).
        let before = self.model.feature_cache_stats();
        let answers = self.model.run_batch(&jobs);
        let mut cache = before.zip(self.model.feature_cache_stats()).map(|(a, b)| {
            let hits = b.hits - a.hits;
            (hits, hits + (b.misses - a.misses))
        });
        answers
            .into_iter()
            .map(|r| {
                r.map(|resp| {
                    let t = &resp.timing_ms;
                    let stages = stage_map(t.preprocess, &t.encode, t.fuse, &t.heads, t.total);
                    Completion { stages_ms: stages, cache: cache.take().or(before.map(|_| (0, 0))) }
                })
                .map_err(|e| e.to_string())
            })
            .collect()
    }
}
