//! Linear probes: a classification head fitted to labelled feature rows by multinomial
//! logistic (softmax) regression, so a head over frozen encoders and fusion has decision
//! margins that mean something (a head left at its random initialisation splits requests by
//! chance directions, and many sit on a near-tie).
//!
//! Algorithm: features are centred per column (mean μ) and divided by one deviation σ for the
//! whole matrix (the RMS of the centred values), for conditioning; one σ for all columns keeps
//! the L2 penalty on the weights as they are applied, so a low-variance feature cannot take a
//! large weight cheaply — which would also magnify any rounding error it carries. The loss
//! is the mean cross-entropy plus `l2/2·‖W‖²` (bias not penalised); Nesterov's accelerated
//! gradient with step `1/L`, where `L` bounds the gradient's Lipschitz constant (half the
//! largest eigenvalue of the standardised Gram matrix, by power iteration, plus `l2`).
//! Everything is f64 and sequential, so a fit is the same on every machine. The
//! standardisation is folded back into the result: `W = W'/σ`, `b = b' − W·μ`.

use crate::error::{Error, Result};

/// A fitted linear head: `logits = weight · x + bias`.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// `[classes, dim]`, row-major (the layout of a `Linear` weight `[out, in]`).
    pub weight: Vec<f32>,
    /// `[classes]`.
    pub bias: Vec<f32>,
    /// Classes.
    pub classes: usize,
    /// Feature width.
    pub dim: usize,
}

impl Probe {
    /// The predicted class of `x` (the first of equal maxima).
    pub fn predict(&self, x: &[f32]) -> usize {
        let logits: Vec<f64> = (0..self.classes)
            .map(|c| {
                let w = &self.weight[c * self.dim..(c + 1) * self.dim];
                self.bias[c] as f64 + w.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>()
            })
            .collect();
        (0..self.classes).fold(0, |best, c| if logits[c] > logits[best] { c } else { best })
    }

    /// Fraction of `rows` whose prediction equals their label.
    pub fn accuracy(&self, rows: &[Vec<f32>], labels: &[usize]) -> f64 {
        if rows.is_empty() {
            return 0.0;
        }
        let right = rows.iter().zip(labels).filter(|(x, y)| self.predict(x) == **y).count();
        right as f64 / rows.len() as f64
    }
}

/// Fit a probe of `classes` classes to `rows` (each `dim` wide) and `labels` (each below
/// `classes`) with L2 strength `l2`, in `iterations` steps.
pub fn fit(rows: &[Vec<f32>], labels: &[usize], classes: usize, l2: f64, iterations: usize) -> Result<Probe> {
    let n = rows.len();
    let dim = rows.first().map_or(0, Vec::len);
    if n == 0 || dim == 0 {
        return Err(Error::Request("a probe needs at least one non-empty feature row".into()));
    }
    if labels.len() != n {
        return Err(Error::Request(format!("{n} feature rows but {} labels", labels.len())));
    }
    if let Some(r) = rows.iter().find(|r| r.len() != dim) {
        return Err(Error::Request(format!("feature rows of {dim} and {} values", r.len())));
    }
    if let Some(&y) = labels.iter().find(|&&y| y >= classes) {
        return Err(Error::Request(format!("label {y} is not below the {classes} classes")));
    }
    if !(l2 >= 0.0 && l2.is_finite()) {
        return Err(Error::Request(format!("l2 strength {l2}: expected a finite value ≥ 0")));
    }
    let x = standardise(rows, dim);
    let lipschitz = 0.5 * gram_top_eigenvalue(&x.z, n, dim) + l2;
    let step = 1.0 / lipschitz.max(1e-12);
    // Parameters: classes × (dim weights + 1 bias), the bias last in each row.
    let width = dim + 1;
    let mut theta = vec![0.0f64; classes * width];
    let mut prev = theta.clone();
    for it in 0..iterations {
        let beta = it as f64 / (it as f64 + 3.0);
        let look: Vec<f64> = theta.iter().zip(&prev).map(|(&t, &p)| t + beta * (t - p)).collect();
        let g = gradient(&look, &x.z, labels, n, dim, classes, l2);
        prev = std::mem::replace(&mut theta, look.iter().zip(&g).map(|(&v, &d)| v - step * d).collect());
    }
    let mut weight = vec![0f32; classes * dim];
    let mut bias = vec![0f32; classes];
    for c in 0..classes {
        let row = &theta[c * width..(c + 1) * width];
        let mut b = row[dim];
        for j in 0..dim {
            let w = row[j] / x.sigma;
            weight[c * dim + j] = w as f32;
            b -= w * x.mu[j];
        }
        bias[c] = b as f32;
    }
    Ok(Probe { weight, bias, classes, dim })
}

/// Standardised features and the statistics to undo it.
struct Standardised {
    /// `[n, dim]`, row-major.
    z: Vec<f64>,
    mu: Vec<f64>,
    /// One deviation for every column.
    sigma: f64,
}

fn standardise(rows: &[Vec<f32>], dim: usize) -> Standardised {
    let n = rows.len() as f64;
    let mut mu = vec![0.0f64; dim];
    for r in rows {
        for (m, &v) in mu.iter_mut().zip(r) {
            *m += v as f64 / n;
        }
    }
    let mut var = vec![0.0f64; dim];
    for r in rows {
        for ((s, &m), &v) in var.iter_mut().zip(&mu).zip(r) {
            *s += (v as f64 - m).powi(2) / n;
        }
    }
    // All-constant features are left unscaled.
    let rms = (var.iter().sum::<f64>() / dim as f64).sqrt();
    let sigma = if rms > 1e-12 { rms } else { 1.0 };
    let z = rows.iter().flat_map(|r| r.iter().zip(&mu).map(|(&v, &m)| (v as f64 - m) / sigma)).collect();
    Standardised { z, mu, sigma }
}

/// Largest eigenvalue of `[Z 1]ᵀ[Z 1] / n` by power iteration (an upper estimate is fine: it
/// only sets the step).
fn gram_top_eigenvalue(z: &[f64], n: usize, dim: usize) -> f64 {
    let width = dim + 1;
    let mut v = vec![1.0 / (width as f64).sqrt(); width];
    let mut lambda = 1.0;
    for _ in 0..50 {
        let mut out = vec![0.0f64; width];
        for r in 0..n {
            let row = &z[r * dim..(r + 1) * dim];
            let dot: f64 = row.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>() + v[dim];
            for (o, &a) in out.iter_mut().zip(row) {
                *o += dot * a / n as f64;
            }
            out[dim] += dot / n as f64;
        }
        let norm = out.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            return 1.0;
        }
        lambda = norm;
        v = out.iter().map(|x| x / norm).collect();
    }
    // Power iteration approaches from below; a margin keeps the step safe.
    lambda * 1.05
}

/// Gradient of the mean cross-entropy plus `l2/2·‖W‖²` at `theta`.
fn gradient(theta: &[f64], z: &[f64], labels: &[usize], n: usize, dim: usize, classes: usize, l2: f64) -> Vec<f64> {
    let width = dim + 1;
    let mut g = vec![0.0f64; theta.len()];
    let mut p = vec![0.0f64; classes];
    for (r, &y) in labels.iter().enumerate() {
        let row = &z[r * dim..(r + 1) * dim];
        for (c, pc) in p.iter_mut().enumerate() {
            let t = &theta[c * width..(c + 1) * width];
            *pc = t[dim] + row.iter().zip(t).map(|(a, b)| a * b).sum::<f64>();
        }
        let top = p.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for pc in p.iter_mut() {
            *pc = (*pc - top).exp();
            sum += *pc;
        }
        for (c, &pc) in p.iter().enumerate() {
            let d = (pc / sum - f64::from(u8::from(c == y))) / n as f64;
            let gr = &mut g[c * width..(c + 1) * width];
            for (o, &a) in gr.iter_mut().zip(row) {
                *o += d * a;
            }
            gr[dim] += d;
        }
    }
    for c in 0..classes {
        for j in 0..dim {
            g[c * width + j] += l2 * theta[c * width + j];
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Three Gaussian clusters around distinct centres, offset and scaled unevenly per column
    /// (so the standardisation and its folding back are exercised).
    fn clusters(n: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres = [[2.0f32, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]];
        let (scale, offset) = ([0.01f32, 1.0, 30.0, 5.0], [100.0f32, -3.0, 0.5, 7.0]);
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let c = i % 3;
            let row = (0..4).map(|j| (centres[c][j] + rng.random_range(-0.8f32..0.8)) * scale[j] + offset[j]).collect();
            rows.push(row);
            labels.push(c);
        }
        (rows, labels)
    }

    #[test]
    fn separable_clusters_are_learned_and_generalise() {
        let (rows, labels) = clusters(300, 1);
        let p = fit(&rows, &labels, 3, 1e-3, 300).unwrap();
        assert_eq!((p.classes, p.dim, p.weight.len(), p.bias.len()), (3, 4, 12, 3));
        assert_eq!(p.accuracy(&rows, &labels), 1.0);
        let (test, truth) = clusters(90, 2);
        assert_eq!(p.accuracy(&test, &truth), 1.0, "held-out rows of the same clusters");
        // Chance is 1/3: an untrained head would not get there.
        let zero = Probe { weight: vec![0.0; 12], bias: vec![0.0; 3], classes: 3, dim: 4 };
        assert!(zero.accuracy(&test, &truth) < 0.4);
    }

    #[test]
    fn a_fit_is_deterministic_and_bad_input_is_refused() {
        let (rows, labels) = clusters(60, 3);
        assert_eq!(fit(&rows, &labels, 3, 1e-2, 50).unwrap(), fit(&rows, &labels, 3, 1e-2, 50).unwrap());
        assert!(fit(&[], &[], 3, 0.0, 10).unwrap_err().to_string().contains("at least one"));
        assert!(fit(&rows, &labels[1..], 3, 0.0, 10).unwrap_err().to_string().contains("labels"));
        assert!(fit(&rows, &labels, 2, 0.0, 10).unwrap_err().to_string().contains("label 2"));
        assert!(fit(&rows, &labels, 3, f64::NAN, 10).unwrap_err().to_string().contains("l2"));
        let mut ragged = rows.clone();
        ragged[5].pop();
        assert!(fit(&ragged, &labels, 3, 0.0, 10).unwrap_err().to_string().contains("3 values"));
    }
}
