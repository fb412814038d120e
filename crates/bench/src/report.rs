//! The report of a run: what was run (scenario, target, precision, batching, workload, exact
//! command, machine) and what was measured (queries, QPS, latency percentiles, validity with
//! its reasons, batch-size histogram, padding ratio, cache hit rate, mean time per stage, and
//! accuracy against FP32 when measured). It serialises to the `--json` format; see the bench
//! documentation for every key.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::early_stop::Estimate;
use crate::latency::{Latencies, Summary};
use crate::machine::Machine;
use crate::record::Run;
use crate::validity::{self, Check, Criteria};

/// What was run, as the caller describes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Setup {
    /// `single-stream`, `multi-stream`, `server` or `offline`.
    pub scenario: String,
    /// The device (e.g. `cpu`).
    pub backend: String,
    /// The model's name.
    pub model: String,
    /// `fp32`, `fp16` or `int8`.
    pub precision: String,
    /// Whether dynamic batching was on.
    pub batching: bool,
    /// Whether same-modality grouping was on (a batch holds requests of one modality mix).
    pub grouping: bool,
    /// Most requests per batch with batching on.
    pub max_batch: usize,
    /// Longest queue delay with batching on, in milliseconds.
    pub max_delay_ms: f64,
    /// The workload: a mix, or a directory of inputs.
    pub workload: String,
    /// Distinct requests in the pool queries draw from.
    pub pool: usize,
    /// The seed.
    pub seed: u64,
    /// Target QPS (server).
    pub target_qps: Option<f64>,
    /// Requests per query (multi-stream; 1 otherwise).
    pub samples_per_query: usize,
    /// The exact command line.
    pub command: String,
    /// The machine.
    pub machine: Machine,
}

/// The batcher settings in a report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BatchSettings {
    /// Most requests per batch (1 with batching off).
    pub max_batch: usize,
    /// Longest queue delay in milliseconds (0 with batching off).
    pub max_delay_ms: f64,
    /// Same-modality grouping (false with batching off).
    pub grouping: bool,
}

/// A run's report (the `--json` object).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Scenario.
    pub scenario: String,
    /// Device.
    pub backend: String,
    /// Model name.
    pub model: String,
    /// Precision.
    pub precision: String,
    /// Dynamic batching on or off.
    pub batching: bool,
    /// Same-modality grouping on or off (off whenever batching is).
    pub grouping: bool,
    /// The batcher's settings.
    pub batch_policy: BatchSettings,
    /// The workload.
    pub workload: String,
    /// Distinct requests queries draw from.
    pub pool: usize,
    /// Seed.
    pub seed: u64,
    /// Queries answered.
    pub queries: usize,
    /// Requests per query.
    pub samples_per_query: usize,
    /// Requests that failed.
    pub failed: usize,
    /// The first few failures.
    pub errors: Vec<String>,
    /// Seconds from the first send to the last answer.
    pub duration_s: f64,
    /// Queries answered per second.
    pub qps: f64,
    /// Requests answered per second.
    pub samples_per_s: f64,
    /// The QPS asked for (server), else null.
    pub target_qps: Option<f64>,
    /// Query latency, milliseconds.
    pub latency_ms: Summary,
    /// The percentile the scenario is judged on (`p90` single-stream, else `p99`).
    pub metric: String,
    /// The early-stopping estimate of that percentile.
    pub early_stopping: Estimate,
    /// The verdict.
    pub valid: bool,
    /// Its checks.
    pub validity: Vec<Check>,
    /// Batch size → number of batches.
    pub batch_size_hist: BTreeMap<usize, usize>,
    /// Padded slots over all slots: 0, because batches are packed without padding.
    pub padding_ratio: f64,
    /// Feature-cache hits over requests, or null when the target does not report its cache.
    pub cache_hit_rate: Option<f64>,
    /// Mean milliseconds per request and stage (`queue`, `preprocess`, `encode.<modality>`,
    /// `fuse`, `head.<name>`, `total`), over the requests that have the stage.
    pub stages_ms: BTreeMap<String, f64>,
    /// Accuracy against FP32 (when the precision is lower and it was measured), else null.
    pub accuracy: Option<serde_json::Value>,
    /// Offline: both batching modes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<serde_json::Value>,
    /// Server with `--find-peak`: the search and the run at half the peak.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub find_peak: Option<serde_json::Value>,
    /// The exact command.
    pub command: String,
    /// The machine.
    pub machine: Machine,
}

/// Mean time per stage, and the cache hit rate.
fn stages(run: &Run) -> (BTreeMap<String, f64>, Option<f64>) {
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let (mut hits, mut lookups) = (0u64, 0u64);
    for s in &run.samples {
        let Ok(c) = &s.outcome else { continue };
        let e = sums.entry("queue".into()).or_default();
        e.0 += s.queue_ms;
        e.1 += 1;
        for (k, v) in &c.stages_ms {
            let e = sums.entry(k.clone()).or_default();
            e.0 += v;
            e.1 += 1;
        }
        if let Some((h, n)) = c.cache {
            hits += h;
            lookups += n;
        }
    }
    let means = sums.into_iter().map(|(k, (s, n))| (k, s / n.max(1) as f64)).collect();
    (means, (lookups > 0).then(|| hits as f64 / lookups as f64))
}

impl Report {
    /// Build the report of `run` under `setup`, judged by `criteria`.
    pub fn new(setup: &Setup, run: &Run, criteria: &Criteria) -> Report {
        let (valid, validity, early_stopping) = validity::verdict(run, criteria);
        let mut hist = BTreeMap::new();
        for &b in &run.batch_sizes {
            *hist.entry(b).or_insert(0) += 1;
        }
        let (stages_ms, cache_hit_rate) = stages(run);
        let errors = run.samples.iter().filter_map(|s| s.outcome.as_ref().err().cloned()).take(5).collect();
        let queries = run.queries();
        let per_s = |n: usize| if run.duration_s > 0.0 { n as f64 / run.duration_s } else { 0.0 };
        Report {
            scenario: setup.scenario.clone(),
            backend: setup.backend.clone(),
            model: setup.model.clone(),
            precision: setup.precision.clone(),
            batching: setup.batching,
            grouping: setup.batching && setup.grouping,
            batch_policy: BatchSettings {
                max_batch: if setup.batching { setup.max_batch } else { 1 },
                max_delay_ms: if setup.batching { setup.max_delay_ms } else { 0.0 },
                grouping: setup.batching && setup.grouping,
            },
            workload: setup.workload.clone(),
            pool: setup.pool,
            seed: setup.seed,
            queries,
            samples_per_query: setup.samples_per_query.max(1),
            failed: run.failed(),
            errors,
            duration_s: run.duration_s,
            qps: per_s(queries),
            samples_per_s: run.samples_per_second(),
            target_qps: setup.target_qps,
            latency_ms: Latencies::of(run.query_latencies_ms.iter().copied()).summary(),
            metric: if criteria.quantile < 0.95 { "p90".into() } else { "p99".into() },
            early_stopping,
            valid,
            validity,
            batch_size_hist: hist,
            padding_ratio: 0.0,
            cache_hit_rate,
            stages_ms,
            accuracy: None,
            offline: None,
            find_peak: None,
            command: setup.command.clone(),
            machine: setup.machine.clone(),
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::Sample;
    use crate::target::Completion;

    pub(crate) fn sample_run() -> Run {
        let samples: Vec<Sample> = (0..50)
            .map(|i| Sample {
                request: i % 3,
                scheduled_s: i as f64 * 0.01,
                latency_ms: 5.0 + i as f64,
                queue_ms: 1.0,
                batch: 2,
                outcome: Ok(Completion {
                    stages_ms: [("fuse".to_string(), 2.0), ("total".to_string(), 4.0)].into(),
                    cache: None,
                }),
            })
            .collect();
        Run {
            query_latencies_ms: samples.iter().map(|s| s.latency_ms).collect(),
            samples,
            duration_s: 0.5,
            batch_sizes: vec![2; 25],
        }
    }

    #[test]
    fn the_json_has_every_required_key() {
        let setup = Setup { scenario: "server".into(), target_qps: Some(100.0), batching: true, ..Setup::default() };
        let criteria =
            Criteria { min_duration_s: Some(0.1), min_queries: 10, quantile: 0.99, latency_bound_ms: Some(200.0) };
        let r = Report::new(&setup, &sample_run(), &criteria);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        for key in [
            "scenario",
            "backend",
            "precision",
            "batching",
            "grouping",
            "queries",
            "duration_s",
            "qps",
            "target_qps",
            "latency_ms",
            "valid",
            "validity",
            "batch_size_hist",
            "accuracy",
            "command",
            "machine",
            "padding_ratio",
            "cache_hit_rate",
            "stages_ms",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        for key in ["p50", "p90", "p95", "p99", "p999", "mean", "max"] {
            assert!(v["latency_ms"][key].is_number(), "missing latency_ms.{key}");
        }
        assert_eq!(v["queries"], 50);
        assert_eq!(v["qps"], 100.0);
        assert_eq!(v["batch_size_hist"]["2"], 25);
        assert_eq!(v["cache_hit_rate"], serde_json::Value::Null);
        assert_eq!(v["stages_ms"]["queue"], 1.0);
        assert_eq!(v["stages_ms"]["fuse"], 2.0);
        assert_eq!(v["valid"], true);
        assert_eq!(v["machine"]["cores"], 0);
        assert_eq!((v["grouping"].clone(), v["batch_policy"]["grouping"].clone()), (false.into(), false.into()));
        let grouped = Setup { grouping: true, ..setup };
        let v: serde_json::Value =
            serde_json::from_str(&Report::new(&grouped, &sample_run(), &criteria).to_json()).unwrap();
        assert_eq!((v["grouping"].clone(), v["batch_policy"]["grouping"].clone()), (true.into(), true.into()));
    }
}
