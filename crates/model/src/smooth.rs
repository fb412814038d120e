//! SmoothQuant for INT8: activations with outlier channels are hard to quantise per tensor,
//! weights are easy, so part of the difficulty is migrated from one to the other. For input
//! channel `j` of the `Linear` layers reading one layer norm's output,
//! `s_j = max|X_j|^α / max|W_{·j}|^(1−α)` (1 where either maximum is 0); the layers' weight
//! columns are multiplied by `s_j` and the norm's `gamma_j` and `beta_j` divided by it, which
//! leaves the FP32 model's function unchanged. Only inputs that are a layer norm's output, read
//! by nothing but `Linear` layers, can absorb `1/s` this way (the attention projections after
//! `ln1`, the first MLP layer after `ln2`, …); the attention output projection and the second
//! MLP layer read other values and are left as they are.

use std::collections::{BTreeMap, BTreeSet};

use crate::calibrate::LayerStats;
use crate::error::{Error, Result};
use crate::weights::Weights;

/// Smallest and largest factor applied (keeps a nearly dead channel from blowing up).
const LIMIT: f32 = 1e4;

/// What [`smooth`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Smoothed {
    /// Layer norms that absorbed a factor, with the `Linear` weights they feed.
    pub norms: BTreeMap<String, Vec<String>>,
}

impl Smoothed {
    /// `Linear` weights smoothed.
    pub fn layers(&self) -> usize {
        self.norms.values().map(Vec::len).sum()
    }
}

/// Smooth the f32 `weights` with strength `alpha` (in `[0, 1]`) from calibration statistics
/// (`layers` by `Linear` weight name, `shared` the layer norms whose output has other users).
pub fn smooth(
    weights: &mut Weights,
    layers: &BTreeMap<String, LayerStats>,
    shared: &BTreeSet<String>,
    alpha: f32,
) -> Result<Smoothed> {
    if !(0.0..=1.0).contains(&alpha) {
        return Err(Error::Config(format!("--smooth {alpha}: expected α in [0, 1]")));
    }
    let mut by_norm: BTreeMap<&str, Vec<(&String, &LayerStats)>> = BTreeMap::new();
    for (name, s) in layers {
        for n in &s.layer_norms {
            by_norm.entry(n.as_str()).or_default().push((name, s));
        }
    }
    let mut done = Smoothed::default();
    for (norm, readers) in by_norm {
        let exclusive = readers.iter().all(|(_, s)| !s.not_from_norm && s.layer_norms.len() == 1);
        if shared.contains(norm) || !exclusive {
            continue;
        }
        let channels = readers[0].1.channel_amax.len();
        let mut x_max = vec![0.0f32; channels];
        let mut w_max = vec![0.0f32; channels];
        for (name, s) in &readers {
            let w = weights.get(name)?;
            let dims = w.desc.shape.dims();
            if w.desc.dtype != omnifuse_core::DType::F32 || dims.len() != 2 || dims[1] != channels {
                return Err(Error::Weights(format!(
                    "smoothing '{name}': expected an f32 [out, {channels}] weight, found {}",
                    w.desc
                )));
            }
            for row in w.to_f32().chunks_exact(channels) {
                for (m, v) in w_max.iter_mut().zip(row) {
                    *m = m.max(v.abs());
                }
            }
            for (m, v) in x_max.iter_mut().zip(&s.channel_amax) {
                *m = m.max(*v);
            }
        }
        let s: Vec<f32> =
            x_max
                .iter()
                .zip(&w_max)
                .map(|(&x, &w)| {
                    if x > 0.0 && w > 0.0 {
                        (x.powf(alpha) / w.powf(1.0 - alpha)).clamp(1.0 / LIMIT, LIMIT)
                    } else {
                        1.0
                    }
                })
                .filter(|v| v.is_finite())
                .collect();
        if s.len() != channels {
            continue;
        }
        for (name, _) in &readers {
            weights.map_f32(name, |_, w| {
                for row in w.chunks_exact_mut(channels) {
                    row.iter_mut().zip(&s).for_each(|(v, f)| *v *= f);
                }
            })?;
        }
        for part in ["weight", "bias"] {
            weights.map_f32(&format!("{norm}.{part}"), |_, g| g.iter_mut().zip(&s).for_each(|(v, f)| *v /= f))?;
        }
        done.norms.insert(norm.to_string(), readers.iter().map(|(n, _)| n.to_string()).collect());
    }
    Ok(done)
}
