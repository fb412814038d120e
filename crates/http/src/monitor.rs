//! Traffic monitoring of one served model over a recent window of answered requests: requests
//! by modality mix (`text+image`) and status, the time of each model stage, P50/P99 latency,
//! modal distribution drift (the population stability index of the window's mix distribution
//! against a baseline: the first `baseline_requests` requests the model answered), the
//! cross-modal alignment of requests with inputs of two or more modalities, and the scale-out
//! signal (image-bearing requests over a share of the window for a while). `GET /metrics`
//! renders it (see `metrics`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use omnifuse_model::input::Modality;
use omnifuse_model::output::{HeadResult, Response};
use serde::Deserialize;

/// Upper bounds of the stage-time buckets, in seconds.
pub const STAGE_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];
/// The stages of `Response.timing_ms`, as labels.
pub const STAGES: [&str; 4] = ["preprocess", "encode", "fuse", "heads"];
/// The mix label of a request that failed before the model saw its inputs.
pub const UNKNOWN_MIX: &str = "unknown";
/// Proportions are floored at this before the PSI's logarithm, so a mix absent on one side
/// counts as rare rather than infinitely surprising.
const PSI_FLOOR: f64 = 1e-4;

/// `[monitoring]` in `serve.toml`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringConfig {
    /// Requests in the recent window (P50/P99, drift, alignment, image share).
    pub window_requests: usize,
    /// The first this many answered requests form the drift baseline.
    pub baseline_requests: usize,
    /// Share of image-bearing requests in the window above which scale-out is signalled.
    pub scale_out_image_share: f64,
    /// How long the share must stay above it, in seconds, before the signal rises.
    pub scale_out_after_s: u64,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        MonitoringConfig {
            window_requests: 200,
            baseline_requests: 200,
            scale_out_image_share: 0.6,
            scale_out_after_s: 60,
        }
    }
}

impl MonitoringConfig {
    /// Check the settings; the error names the offending one and its value.
    pub fn validate(&self) -> Result<(), String> {
        if self.window_requests == 0 {
            return Err("monitoring.window_requests must be at least 1, got 0".into());
        }
        if self.baseline_requests == 0 {
            return Err("monitoring.baseline_requests must be at least 1, got 0".into());
        }
        let s = self.scale_out_image_share;
        if !(s.is_finite() && (0.0..1.0).contains(&s)) {
            return Err(format!("monitoring.scale_out_image_share must be in [0, 1), got {s}"));
        }
        Ok(())
    }
}

/// A histogram over [`STAGE_BUCKETS`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Per bucket, the observations at or below its bound (cumulative).
    pub buckets: [u64; STAGE_BUCKETS.len()],
    /// Observations.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        for (b, &le) in self.buckets.iter_mut().zip(&STAGE_BUCKETS) {
            if v <= le {
                *b += 1;
            }
        }
        self.count += 1;
        self.sum += v;
    }
}

/// One answered request in the window.
#[derive(Clone, Debug)]
struct Sample {
    mix: String,
    image: bool,
    latency_s: f64,
    alignment: Option<f64>,
}

#[derive(Default)]
struct State {
    requests: BTreeMap<(String, u16), u64>,
    stages: BTreeMap<&'static str, Histogram>,
    baseline: BTreeMap<String, u64>,
    baseline_n: usize,
    window: VecDeque<Sample>,
    above_since: Option<Instant>,
    scale_out: bool,
}

/// The numbers of a [`Monitor`] now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// (modality mix, HTTP status) → requests.
    pub requests: BTreeMap<(String, u16), u64>,
    /// Stage → time histogram, in seconds.
    pub stages: BTreeMap<&'static str, Histogram>,
    /// Median latency over the window, seconds (`None`: empty window).
    pub p50: Option<f64>,
    /// 99th-percentile latency over the window, seconds.
    pub p99: Option<f64>,
    /// Population stability index of the window's mixes against the baseline (`None` until
    /// the baseline is complete).
    pub psi: Option<f64>,
    /// Mean cross-modal cosine over the window's requests that have one.
    pub alignment: Option<f64>,
    /// Requests in the window with an alignment.
    pub alignment_samples: usize,
    /// Share of image-bearing requests in the window.
    pub image_share: Option<f64>,
    /// Whether the scale-out signal is up.
    pub scale_out: bool,
    /// Requests in the window.
    pub window: usize,
}

/// The monitor of one served model.
pub struct Monitor {
    name: String,
    config: MonitoringConfig,
    state: Mutex<State>,
}

/// A request's modality mix: its distinct modalities in id order, joined by `+`.
pub fn mix(response: &Response) -> String {
    let present: Vec<&str> =
        Modality::ALL.iter().filter(|m| response.inputs.iter().any(|i| i.modality == **m)).map(|m| m.name()).collect();
    if present.is_empty() { UNKNOWN_MIX.to_string() } else { present.join("+") }
}

/// Mean cosine between the retrieval head's embeddings of inputs of different modalities;
/// `None` without a retrieval head or with one modality only.
pub fn alignment(response: &Response) -> Option<f64> {
    let embeddings = response.heads.values().find_map(|h| match h {
        HeadResult::Retrieval { inputs, .. } => Some(inputs),
        _ => None,
    })?;
    let (mut sum, mut pairs) = (0.0, 0usize);
    for (i, (a, ia)) in embeddings.iter().zip(&response.inputs).enumerate() {
        for (b, ib) in embeddings.iter().zip(&response.inputs).skip(i + 1) {
            if ia.modality != ib.modality {
                sum += cosine(a, b)?;
                pairs += 1;
            }
        }
    }
    (pairs > 0).then(|| sum / pairs as f64)
}

fn cosine(a: &[f32], b: &[f32]) -> Option<f64> {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    (a.len() == b.len() && na > 0.0 && nb > 0.0).then(|| dot / (na * nb))
}

/// The population stability index of `current` against `baseline` (counts per category):
/// Σ (c − b) · ln(c / b) over the proportions, each floored at 10⁻⁴.
pub fn psi(baseline: &BTreeMap<String, u64>, current: &BTreeMap<String, u64>) -> f64 {
    let (bn, cn) = (baseline.values().sum::<u64>().max(1) as f64, current.values().sum::<u64>().max(1) as f64);
    let keys: std::collections::BTreeSet<&String> = baseline.keys().chain(current.keys()).collect();
    keys.into_iter()
        .map(|k| {
            let b = (baseline.get(k).copied().unwrap_or(0) as f64 / bn).max(PSI_FLOOR);
            let c = (current.get(k).copied().unwrap_or(0) as f64 / cn).max(PSI_FLOOR);
            (c - b) * (c / b).ln()
        })
        .sum()
}

fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get(((last as f64) * q).round() as usize).copied()
}

impl Monitor {
    /// A monitor for the model served as `name`.
    pub fn new(name: &str, config: MonitoringConfig) -> Self {
        Monitor { name: name.to_string(), config, state: Mutex::new(State::default()) }
    }

    /// Its settings.
    pub fn config(&self) -> &MonitoringConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Updates are a few additions: a poisoned lock still holds usable numbers.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request the model answered, `latency` end to end.
    pub fn record_answer(&self, response: &Response, latency: Duration) {
        let mix = mix(response);
        let t = &response.timing_ms;
        let stages = [t.preprocess, t.encode.values().sum(), t.fuse, t.heads.values().sum()];
        let sample = Sample {
            image: response.inputs.iter().any(|i| i.modality == Modality::Image),
            alignment: alignment(response),
            latency_s: latency.as_secs_f64(),
            mix: mix.clone(),
        };
        let mut s = self.lock();
        *s.requests.entry((mix.clone(), 200)).or_default() += 1;
        for (stage, ms) in STAGES.iter().zip(stages) {
            s.stages.entry(stage).or_default().observe(ms / 1000.0);
        }
        if s.baseline_n < self.config.baseline_requests {
            *s.baseline.entry(mix).or_default() += 1;
            s.baseline_n += 1;
        }
        s.window.push_back(sample);
        while s.window.len() > self.config.window_requests {
            s.window.pop_front();
        }
        self.refresh(&mut s, Instant::now());
    }

    /// A request that ended in error `status` before the model answered it.
    pub fn record_error(&self, status: u16) {
        *self.lock().requests.entry((UNKNOWN_MIX.to_string(), status)).or_default() += 1;
    }

    /// Raise or clear the scale-out signal at `now`, with one log line when it changes.
    fn refresh(&self, s: &mut State, now: Instant) {
        let n = s.window.len();
        let share = if n == 0 { 0.0 } else { s.window.iter().filter(|x| x.image).count() as f64 / n as f64 };
        if share > self.config.scale_out_image_share {
            let since = *s.above_since.get_or_insert(now);
            if !s.scale_out && now.duration_since(since) >= Duration::from_secs(self.config.scale_out_after_s) {
                s.scale_out = true;
                tracing::info!(
                    "scale-out signal: model {}: {:.0}% of the last {n} requests carry images, over {:.0}% for {} s",
                    self.name,
                    share * 100.0,
                    self.config.scale_out_image_share * 100.0,
                    self.config.scale_out_after_s
                );
            }
        } else {
            s.above_since = None;
            if s.scale_out {
                s.scale_out = false;
                tracing::info!(
                    "scale-out signal cleared: model {}: {:.0}% of the last {n} requests carry images",
                    self.name,
                    share * 100.0
                );
            }
        }
    }

    /// The numbers now (the scale-out signal re-checked at this moment).
    pub fn snapshot(&self) -> Snapshot {
        let mut s = self.lock();
        self.refresh(&mut s, Instant::now());
        let mut latencies: Vec<f64> = s.window.iter().map(|x| x.latency_s).collect();
        latencies.sort_by(f64::total_cmp);
        let mut current = BTreeMap::new();
        for x in &s.window {
            *current.entry(x.mix.clone()).or_insert(0u64) += 1;
        }
        let aligned: Vec<f64> = s.window.iter().filter_map(|x| x.alignment).collect();
        let n = s.window.len();
        Snapshot {
            requests: s.requests.clone(),
            stages: s.stages.clone(),
            p50: quantile(&latencies, 0.5),
            p99: quantile(&latencies, 0.99),
            psi: (s.baseline_n >= self.config.baseline_requests && n > 0).then(|| psi(&s.baseline, &current)),
            alignment: (!aligned.is_empty()).then(|| aligned.iter().sum::<f64>() / aligned.len() as f64),
            alignment_samples: aligned.len(),
            image_share: (n > 0).then(|| s.window.iter().filter(|x| x.image).count() as f64 / n as f64),
            scale_out: s.scale_out,
            window: n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn psi_is_zero_for_the_same_mix_and_grows_with_drift() {
        let base = counts(&[("text", 80), ("text+image", 20)]);
        assert!(psi(&base, &counts(&[("text", 8), ("text+image", 2)])).abs() < 1e-12);
        let mild = psi(&base, &counts(&[("text", 70), ("text+image", 30)]));
        let strong = psi(&base, &counts(&[("text", 10), ("text+image", 90)]));
        assert!(mild > 0.0 && mild < 0.1, "{mild}");
        assert!(strong > 0.25 && strong.is_finite(), "{strong}");
        assert!(psi(&counts(&[("text", 5)]), &counts(&[("image", 5)])).is_finite());
    }

    #[test]
    fn quantiles_and_settings() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[1.0, 2.0, 3.0], 0.5), Some(2.0));
        assert_eq!(quantile(&[1.0, 2.0, 3.0], 0.99), Some(3.0));
        assert!(MonitoringConfig::default().validate().is_ok());
        let bad = MonitoringConfig { scale_out_image_share: 1.5, ..MonitoringConfig::default() };
        assert!(bad.validate().unwrap_err().contains("scale_out_image_share"));
        let bad = MonitoringConfig { window_requests: 0, ..MonitoringConfig::default() };
        assert!(bad.validate().unwrap_err().contains("window_requests"));
    }

    #[test]
    fn cosine_of_mismatched_or_zero_vectors_is_none() {
        assert_eq!(cosine(&[1.0, 0.0], &[1.0]), None);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), None);
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]).unwrap() - 1.0).abs() < 1e-12);
    }
}
