//! Fast layer norm and softmax: rows in parallel, f32 lanes accumulated in 16-wide blocks
//! so the compiler emits SIMD, and the vectorisable [`super::math::exp`].

use super::math::{exp, par_rows};

const LANES: usize = 16;

fn sum_lanes(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += f(c[l]);
        }
    }
    acc.iter().sum::<f32>() + tail.iter().map(|&v| f(v)).sum::<f32>()
}

/// Maximum of `x` over 16 independent lanes (a single running max is a serial dependency
/// chain the compiler may not reorder).
fn max_lanes(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    tail.iter().chain(acc.iter()).fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// Layer norm over rows of length `n` (two passes: mean, then centred variance).
pub fn layernorm(x: &[f32], gamma: &[f32], beta: &[f32], n: usize, eps: f32, out: &mut [f32]) {
    if n == 0 {
        return;
    }
    par_rows(x, out, n, |xs, os| {
        for (row, o) in xs.chunks_exact(n).zip(os.chunks_exact_mut(n)) {
            let mean = sum_lanes(row, |v| v) / n as f32;
            let var = sum_lanes(row, |v| (v - mean) * (v - mean)) / n as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for j in 0..n {
                o[j] = (row[j] - mean) * inv * gamma[j] + beta[j];
            }
        }
    });
}

/// Softmax over rows of length `n`.
pub fn softmax(x: &[f32], n: usize, out: &mut [f32]) {
    if n == 0 {
        return;
    }
    par_rows(x, out, n, |xs, os| {
        for (row, o) in xs.chunks_exact(n).zip(os.chunks_exact_mut(n)) {
            let max = max_lanes(row);
            for j in 0..n {
                o[j] = exp(row[j] - max);
            }
            let inv = 1.0 / sum_lanes(o, |v| v);
            o.iter_mut().for_each(|v| *v *= inv);
        }
    });
}
