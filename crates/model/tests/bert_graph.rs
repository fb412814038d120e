//! The BERT encoder graph (`bert::encode` + `bert::pool`) on the CPU backend against a plain
//! f64 re-computation of the same definition, on a tiny random BERT: several sentences packed
//! into one graph must give what each gives alone, and what the formula gives.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use omnifuse_core::{Backend, HostTensor};
use omnifuse_cpu::{CpuBackend, Tier};
use omnifuse_model::bert::{self, BertConfig, Pooling};
use omnifuse_model::builder::{Builder, to_f32};

fn tiny() -> BertConfig {
    BertConfig {
        vocab: 40,
        width: 16,
        layers: 2,
        heads: 4,
        intermediate: 32,
        max_positions: 12,
        type_vocab: 2,
        eps: 1e-12,
    }
}

/// Deterministic pseudo-random weights (an LCG), scaled like a trained BERT's.
fn weights(cfg: &BertConfig) -> BTreeMap<String, Vec<f32>> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) as f32
    };
    cfg.spec()
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let v = if name.ends_with("LayerNorm.weight") {
                (0..n).map(|_| 1.0 + 0.2 * next()).collect()
            } else {
                (0..n).map(|_| 0.6 * next()).collect()
            };
            (name, v)
        })
        .collect()
}

fn erf(x: f64) -> f64 {
    // Taylor series below 3, the asymptotic erfc expansion above (both far below 1e-7 error).
    if x.abs() >= 3.0 {
        let (a, a2) = (x.abs(), x * x);
        let erfc = (-a2).exp() / (a * std::f64::consts::PI.sqrt()) * (1.0 - 1.0 / (2.0 * a2) + 3.0 / (4.0 * a2 * a2));
        return x.signum() * (1.0 - erfc);
    }
    let (mut term, mut sum, x2) = (x, x, x * x);
    for n in 1..80 {
        term *= -x2 / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

struct Ref<'a> {
    w: &'a BTreeMap<String, Vec<f32>>,
    cfg: &'a BertConfig,
}

impl Ref<'_> {
    fn t(&self, n: &str) -> Vec<f64> {
        self.w[n].iter().map(|&x| f64::from(x)).collect()
    }
    fn linear(&self, x: &[Vec<f64>], p: &str) -> Vec<Vec<f64>> {
        let (w, b) = (self.t(&format!("{p}.weight")), self.t(&format!("{p}.bias")));
        let out = b.len();
        x.iter()
            .map(|row| {
                (0..out)
                    .map(|o| b[o] + row.iter().enumerate().map(|(i, v)| v * w[o * row.len() + i]).sum::<f64>())
                    .collect()
            })
            .collect()
    }
    fn ln(&self, x: &[Vec<f64>], p: &str) -> Vec<Vec<f64>> {
        let (g, b) = (self.t(&format!("{p}.weight")), self.t(&format!("{p}.bias")));
        x.iter()
            .map(|r| {
                let n = r.len() as f64;
                let m = r.iter().sum::<f64>() / n;
                let var = r.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n;
                r.iter()
                    .enumerate()
                    .map(|(i, v)| (v - m) / (var + f64::from(self.cfg.eps)).sqrt() * g[i] + b[i])
                    .collect()
            })
            .collect()
    }
    /// One sentence → its pooled (mean) vector.
    fn sentence(&self, ids: &[i32]) -> Vec<f64> {
        let c = self.cfg;
        let w = c.width;
        let (word, pos, typ) = (
            self.t("embeddings.word_embeddings.weight"),
            self.t("embeddings.position_embeddings.weight"),
            self.t("embeddings.token_type_embeddings.weight"),
        );
        let x: Vec<Vec<f64>> = ids
            .iter()
            .enumerate()
            .map(|(p, &id)| (0..w).map(|j| word[id as usize * w + j] + pos[p * w + j] + typ[j]).collect())
            .collect();
        let mut x = self.ln(&x, "embeddings.LayerNorm");
        let (h, dh) = (c.heads, w / c.heads);
        for l in 0..c.layers {
            let p = format!("encoder.layer.{l}");
            let q = self.linear(&x, &format!("{p}.attention.self.query"));
            let k = self.linear(&x, &format!("{p}.attention.self.key"));
            let v = self.linear(&x, &format!("{p}.attention.self.value"));
            let mut a = vec![vec![0.0; w]; x.len()];
            for head in 0..h {
                let cols = head * dh..(head + 1) * dh;
                for i in 0..x.len() {
                    let s: Vec<f64> = (0..x.len())
                        .map(|j| cols.clone().map(|d| q[i][d] * k[j][d]).sum::<f64>() / (dh as f64).sqrt())
                        .collect();
                    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for d in cols.clone() {
                        a[i][d] = (0..x.len()).map(|j| e[j] / z * v[j][d]).sum();
                    }
                }
            }
            let o = self.linear(&a, &format!("{p}.attention.output.dense"));
            let r: Vec<Vec<f64>> =
                o.iter().zip(&x).map(|(o, x)| o.iter().zip(x).map(|(a, b)| a + b).collect()).collect();
            x = self.ln(&r, &format!("{p}.attention.output.LayerNorm"));
            let f = self.linear(&x, &format!("{p}.intermediate.dense"));
            let f: Vec<Vec<f64>> =
                f.iter().map(|r| r.iter().map(|&v| 0.5 * v * (1.0 + erf(v / 2f64.sqrt()))).collect()).collect();
            let o = self.linear(&f, &format!("{p}.output.dense"));
            let r: Vec<Vec<f64>> =
                o.iter().zip(&x).map(|(o, x)| o.iter().zip(x).map(|(a, b)| a + b).collect()).collect();
            x = self.ln(&r, &format!("{p}.output.LayerNorm"));
        }
        (0..w).map(|j| x.iter().map(|r| r[j]).sum::<f64>() / x.len() as f64).collect()
    }
}

fn run(
    backend: &Arc<dyn Backend>,
    dev: &HashMap<String, omnifuse_core::Tensor>,
    cfg: &BertConfig,
    seqs: &[&[i32]],
) -> Vec<f32> {
    let mut b = Builder::new(dev, cfg.eps);
    let x = bert::encode(&mut b, cfg, "", seqs).unwrap();
    let lengths: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
    let pooled = bert::pool(&mut b, x, &lengths, Pooling::Mean).unwrap();
    let out = b.run(backend, &[pooled]).unwrap();
    to_f32(backend, &out[0]).unwrap()
}

#[test]
fn packed_sentences_match_the_formula_and_their_single_runs() {
    let cfg = tiny();
    let w = weights(&cfg);
    let backend: Arc<dyn Backend> = Arc::new(CpuBackend::new(Tier::Fast, 2).unwrap());
    let mut dev = HashMap::new();
    for (name, shape) in cfg.spec() {
        let t = HostTensor::from_slice(shape.as_slice(), &w[&name]).unwrap();
        dev.insert(name, backend.to_device(&t).unwrap());
    }
    let seqs: [&[i32]; 4] = [&[1, 2], &[1, 7, 39, 3, 2], &[5], &[1, 4, 4, 4, 9, 11, 13, 17, 19, 23, 29, 2]];
    let packed = run(&backend, &dev, &cfg, &seqs);
    let reference = Ref { w: &w, cfg: &cfg };
    for (s, ids) in seqs.iter().enumerate() {
        let got = &packed[s * cfg.width..(s + 1) * cfg.width];
        let alone = run(&backend, &dev, &cfg, &[ids]);
        let want = reference.sentence(ids);
        for j in 0..cfg.width {
            assert!((f64::from(got[j]) - want[j]).abs() < 1e-4, "sentence {s}, column {j}: {} vs {}", got[j], want[j]);
            assert!(
                (got[j] - alone[j]).abs() < 1e-5,
                "sentence {s}, column {j}: packed {} vs alone {}",
                got[j],
                alone[j]
            );
        }
    }
    let err = bert::encode(&mut Builder::new(&dev, cfg.eps), &cfg, "", &[&[40]]).unwrap_err().to_string();
    assert!(err.contains("outside the vocabulary"), "{err}");
}
