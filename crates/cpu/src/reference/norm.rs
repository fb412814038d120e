//! Reference layer norm and softmax over the last axis, in f64.

/// Layer norm over rows of length `n` (biased variance).
pub fn layernorm(x: &[f32], gamma: &[f32], beta: &[f32], n: usize, eps: f32, out: &mut [f32]) {
    if n == 0 {
        return;
    }
    for (row, o) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for j in 0..n {
            o[j] = ((row[j] as f64 - mean) * inv * gamma[j] as f64 + beta[j] as f64) as f32;
        }
    }
}

/// Softmax over rows of length `n`, max-subtracted.
pub fn softmax(x: &[f32], n: usize, out: &mut [f32]) {
    if n == 0 {
        return;
    }
    for (row, o) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        for j in 0..n {
            o[j] = ((row[j] as f64 - max).exp() / sum) as f32;
        }
    }
}
