//! Static activation calibration for INT8: an [`Observer`] records, for every `Linear` layer's
//! input as the FP32 model runs a calibration set, the per-tensor absolute maximum, a
//! histogram of `|x|` and the per-input-channel absolute maxima (for SmoothQuant), and which
//! layer norm (if any) produced that input. [`Method`] turns a layer's record into a clip
//! threshold: the maximum (min-max), a percentile of `|x|`, or the threshold whose 128-level
//! quantisation loses least information (KL divergence, searched over the histogram). The
//! static per-tensor step is `threshold / 127`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::input::RawInput;
use crate::model::Model;
use crate::request::Parameters;
use crate::weights::Weights;

/// Bins of an activation histogram.
pub const BINS: usize = 2048;
/// Quantised levels of one sign (symmetric INT8: 0..=127).
const LEVELS: usize = 128;

/// `|x|` counts over `[0, range)` in [`BINS`] equal bins; the range doubles (merging bins in
/// pairs, exactly) whenever a larger value arrives.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// Upper edge of the last bin (0 until a non-zero value arrives).
    pub range: f32,
    /// Counts per bin.
    pub counts: Vec<u64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { range: 0.0, counts: vec![0; BINS] }
    }
}

impl Histogram {
    /// Add the magnitudes of `values` (non-finite values are skipped).
    pub fn add(&mut self, values: &[f32]) {
        let amax = values.iter().filter(|v| v.is_finite()).fold(0.0f32, |m, v| m.max(v.abs()));
        if amax > 0.0 && self.range == 0.0 {
            self.range = amax;
        }
        while amax > self.range {
            self.double();
        }
        if self.range == 0.0 {
            self.counts[0] += values.iter().filter(|v| v.is_finite()).count() as u64;
            return;
        }
        let per = BINS as f32 / self.range;
        for v in values.iter().filter(|v| v.is_finite()) {
            let i = ((v.abs() * per) as usize).min(BINS - 1);
            self.counts[i] += 1;
        }
    }

    fn double(&mut self) {
        for i in 0..BINS / 2 {
            self.counts[i] = self.counts[2 * i] + self.counts[2 * i + 1];
        }
        self.counts[BINS / 2..].iter_mut().for_each(|c| *c = 0);
        self.range *= 2.0;
    }

    /// Width of one bin.
    pub fn bin_width(&self) -> f32 {
        self.range / BINS as f32
    }

    /// The upper edge of the first bin at which at least `pct` percent of the values lie.
    pub fn percentile(&self, pct: f64) -> f32 {
        let total: u64 = self.counts.iter().sum();
        let want = (pct / 100.0 * total as f64).ceil() as u64;
        let mut acc = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            acc += c;
            if acc >= want.max(1) {
                return (i + 1) as f32 * self.bin_width();
            }
        }
        self.range
    }

    /// The clip threshold minimising `KL(P‖Q)`, where `P` is the distribution clipped at a
    /// candidate threshold (the counts beyond it added to its last bin) and `Q` is `P`
    /// quantised to 128 levels (each level's mass spread evenly over its non-empty bins).
    pub fn entropy_threshold(&self) -> f32 {
        if self.range == 0.0 {
            return 0.0;
        }
        let last = self.counts.iter().rposition(|&c| c > 0).map_or(0, |i| i + 1);
        if last <= LEVELS {
            return last as f32 * self.bin_width();
        }
        let mut best = (f64::INFINITY, last);
        for i in LEVELS..=last {
            let kl = self.kl_at(i);
            if kl < best.0 {
                best = (kl, i);
            }
        }
        best.1 as f32 * self.bin_width()
    }

    /// `KL(P‖Q)` for the threshold at the upper edge of bin `i - 1`.
    fn kl_at(&self, i: usize) -> f64 {
        let mut p: Vec<f64> = self.counts[..i].iter().map(|&c| c as f64).collect();
        let outliers: u64 = self.counts[i..].iter().sum();
        p[i - 1] += outliers as f64;
        let mut q = vec![0.0f64; i];
        for level in 0..LEVELS {
            let (start, end) = (level * i / LEVELS, ((level + 1) * i / LEVELS).max(level * i / LEVELS + 1));
            let end = end.min(i);
            let mass: f64 = self.counts[start..end].iter().map(|&c| c as f64).sum();
            let nonzero = p[start..end].iter().filter(|&&c| c > 0.0).count();
            if nonzero == 0 {
                continue;
            }
            for j in start..end {
                if p[j] > 0.0 {
                    q[j] = mass / nonzero as f64;
                }
            }
        }
        let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
        if sp == 0.0 || sq == 0.0 {
            return f64::INFINITY;
        }
        let mut kl = 0.0;
        for (&pv, &qv) in p.iter().zip(&q) {
            if pv > 0.0 {
                let (pn, qn) = (pv / sp, qv / sq);
                // A bin P has and Q lacks (only the outlier bin can be one): a large but
                // finite penalty, so every candidate stays comparable.
                kl += if qn > 0.0 { pn * (pn / qn).ln() } else { pn * 1e3 };
            }
        }
        kl
    }
}

/// What was seen at one `Linear` layer's input.
#[derive(Clone, Debug, Default)]
pub struct LayerStats {
    /// Largest `|x|`.
    pub amax: f32,
    /// Largest `|x|` per input channel (the last axis).
    pub channel_amax: Vec<f32>,
    /// `|x|` histogram.
    pub hist: Histogram,
    /// The layer norms (by parameter prefix) whose output this input was; empty when it was
    /// something else.
    pub layer_norms: BTreeSet<String>,
    /// Some use of this input was not a layer norm's output.
    pub not_from_norm: bool,
}

/// Collects [`LayerStats`] by `Linear` weight name while a model runs (see
/// [`crate::Model::set_observer`]); thread-safe, so batched runs may record at once.
#[derive(Debug, Default)]
pub struct Observer {
    layers: Mutex<BTreeMap<String, LayerStats>>,
    /// Layer norms whose output was also used by something other than a recorded `Linear`.
    shared_norms: Mutex<BTreeSet<String>>,
}

impl Observer {
    /// An empty observer.
    pub fn new() -> Self {
        Observer::default()
    }

    /// Record the input `values` (`[.., channels]`) of the `Linear` weight `name`, produced by
    /// the layer norm `norm` (or not).
    pub fn record(&self, name: &str, channels: usize, values: &[f32], norm: Option<&str>) -> Result<()> {
        let mut layers = self.layers.lock().map_err(|_| Error::Request("calibration observer poisoned".into()))?;
        let s = layers.entry(name.to_string()).or_default();
        if s.channel_amax.is_empty() {
            s.channel_amax = vec![0.0; channels];
        }
        if s.channel_amax.len() != channels || channels == 0 {
            return Err(Error::Request(format!(
                "calibration: '{name}' saw inputs of {channels} channels after {}",
                s.channel_amax.len()
            )));
        }
        for row in values.chunks_exact(channels) {
            for (m, v) in s.channel_amax.iter_mut().zip(row) {
                if v.is_finite() {
                    *m = m.max(v.abs());
                }
            }
        }
        s.amax = s.channel_amax.iter().fold(s.amax, |m, &v| m.max(v));
        s.hist.add(values);
        match norm {
            Some(n) => {
                s.layer_norms.insert(n.to_string());
            }
            None => s.not_from_norm = true,
        }
        Ok(())
    }

    /// Note that the output of layer norm `norm` fed something other than a recorded `Linear`.
    pub fn norm_shared(&self, norm: &str) -> Result<()> {
        let mut n = self.shared_norms.lock().map_err(|_| Error::Request("calibration observer poisoned".into()))?;
        n.insert(norm.to_string());
        Ok(())
    }

    /// Everything recorded: per-layer statistics and the layer norms with other users.
    pub fn take(&self) -> Result<(BTreeMap<String, LayerStats>, BTreeSet<String>)> {
        let poisoned = || Error::Request("calibration observer poisoned".into());
        let layers = std::mem::take(&mut *self.layers.lock().map_err(|_| poisoned())?);
        let shared = std::mem::take(&mut *self.shared_norms.lock().map_err(|_| poisoned())?);
        Ok((layers, shared))
    }
}

/// How a static activation threshold is chosen from calibration statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// The largest `|x|` seen.
    MinMax,
    /// This percentile of `|x|` (in `(0, 100]`).
    Percentile(f64),
    /// The KL-divergence-minimising clip threshold.
    Entropy,
}

impl Method {
    /// Parse `--method` with its `--percentile`.
    pub fn parse(name: &str, percentile: f64) -> Result<Method> {
        match name {
            "minmax" => Ok(Method::MinMax),
            "percentile" => {
                if !(percentile > 0.0 && percentile <= 100.0) {
                    return Err(Error::Config(format!("--percentile {percentile}: expected a value in (0, 100]")));
                }
                Ok(Method::Percentile(percentile))
            }
            "entropy" => Ok(Method::Entropy),
            other => Err(Error::Config(format!("--method {other}: expected minmax, percentile or entropy"))),
        }
    }

    /// The name recorded in a model's `[quant] activations` (`static-<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Method::MinMax => "minmax",
            Method::Percentile(_) => "percentile",
            Method::Entropy => "entropy",
        }
    }

    /// The clip threshold for one layer (never above its maximum).
    pub fn threshold(self, s: &LayerStats) -> f32 {
        let t = match self {
            Method::MinMax => s.amax,
            Method::Percentile(p) => s.hist.percentile(p),
            Method::Entropy => s.hist.entropy_threshold(),
        };
        t.min(s.amax)
    }

    /// The static per-tensor step for one layer: `threshold / 127` (1 when nothing non-zero
    /// was seen, as the quantiser does for an all-zero row).
    pub fn step(self, s: &LayerStats) -> f32 {
        let t = self.threshold(s);
        if t > 0.0 && t.is_finite() { t / 127.0 } else { 1.0 }
    }
}

/// Calibration statistics: per `Linear` weight, and the layer norms whose output has other
/// users.
pub type Stats = (BTreeMap<String, LayerStats>, BTreeSet<String>);

/// Run the (FP32) `model` on every request of a calibration set, answering every head (the
/// generation heads' decoder steps included), and return what every `Linear` input looked
/// like.
pub fn collect(model: &mut Model, requests: &[Vec<RawInput>]) -> Result<Stats> {
    if requests.is_empty() {
        return Err(Error::Request("the calibration set is empty".into()));
    }
    let params = Parameters::default();
    let observer = Arc::new(Observer::new());
    model.set_observer(Some(observer.clone()));
    let run: Result<()> = requests.iter().try_for_each(|r| model.run(r, &params).map(|_| ()));
    model.set_observer(None);
    run?;
    observer.take()
}

/// Store a static input step chosen by `method` for every INT8 `Linear` weight that was
/// recorded; returns how many.
pub fn apply(weights: &mut Weights, layers: &BTreeMap<String, LayerStats>, method: Method) -> Result<usize> {
    let mut n = 0;
    for (name, s) in layers {
        if weights.get(name).is_ok_and(|t| t.desc.dtype == omnifuse_core::DType::I8) {
            weights.set_input_step(name, method.step(s))?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 000 values of a peaked (exponential, mean 0.1) distribution and one far outlier
    /// at 50.
    fn with_outlier() -> LayerStats {
        let o = Observer::new();
        let mut v: Vec<f32> = (0..10_000).map(|i| -0.1 * (1.0 - (i as f32 + 0.5) / 10_000.0).ln()).collect();
        v.push(-50.0);
        o.record("l", 1, &v, None).unwrap();
        o.take().unwrap().0.remove("l").unwrap()
    }

    #[test]
    fn minmax_keeps_the_outlier_percentile_and_entropy_clip_it() {
        let s = with_outlier();
        assert_eq!(Method::MinMax.threshold(&s), 50.0);
        let p = Method::Percentile(99.9).threshold(&s);
        // The exact 99.9th percentile is 0.1 · ln(1000) ≈ 0.69; a bin is 50/2048 wide.
        assert!(p > 0.66 && p < 0.75, "99.9th percentile {p}");
        assert_eq!(Method::Percentile(100.0).threshold(&s), 50.0);
        let e = Method::Entropy.threshold(&s);
        assert!(e < 5.0 && e > 0.2, "entropy threshold {e}");
        assert_eq!(Method::MinMax.step(&s), 50.0 / 127.0);
    }

    #[test]
    fn histogram_doubles_exactly_and_counts_everything() {
        let mut h = Histogram::default();
        h.add(&[1.0, 0.25]);
        assert_eq!(h.range, 1.0);
        h.add(&[3.5, f32::NAN]);
        assert_eq!(h.range, 4.0);
        assert_eq!(h.counts.iter().sum::<u64>(), 3);
        assert_eq!(h.counts[BINS / 4 / 4], 1, "0.25 lands in bin 128 of a [0, 4) range");
        assert_eq!(h.counts[511], 1, "1.0 was the last bin of [0, 1), bin 511 after two merges");
        assert_eq!(h.counts[1792], 1);
    }

    #[test]
    fn entropy_keeps_a_uniform_distribution_whole() {
        let o = Observer::new();
        let v: Vec<f32> = (0..20_000).map(|i| i as f32 / 20_000.0).collect();
        o.record("u", 4, &v, Some("ln")).unwrap();
        let (mut layers, _) = o.take().unwrap();
        let s = layers.remove("u").unwrap();
        let e = Method::Entropy.threshold(&s);
        assert!(e > 0.9, "a uniform distribution has nothing to clip, got {e}");
        assert_eq!(s.channel_amax.len(), 4);
        assert!(s.layer_norms.contains("ln") && !s.not_from_norm);
    }

    #[test]
    fn methods_parse_and_percentiles_out_of_range_are_refused() {
        assert_eq!(Method::parse("percentile", 99.99).unwrap(), Method::Percentile(99.99));
        for bad in [0.0, -1.0, 100.5, f64::NAN] {
            let e = Method::parse("percentile", bad).unwrap_err().to_string();
            assert!(e.contains("(0, 100]"), "{e}");
        }
        assert!(Method::parse("mse", 99.0).unwrap_err().to_string().contains("minmax, percentile or entropy"));
    }
}
