//! Fast plain attention: (batch, head) pairs in parallel; per query, scores by f32 dot
//! products, a vectorised exp, and a weighted sum of V rows. Still materialises one score
//! row per query (O(Sk) memory per thread); the fused flash-style kernel is its own op.

use rayon::prelude::*;

use super::math::exp;
use crate::kernels::AttentionArgs;

/// `a · b` over 16 independent lanes (a shape the compiler vectorises).
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Plain multi-head attention.
pub fn attention(a: &AttentionArgs, out: &mut [f32]) {
    let width = a.heads * a.head_dim;
    let offset = a.sk as isize - a.sq as isize;
    // One task per (batch, query row): rows of the output are disjoint.
    let row_task = |(row, o): (usize, &mut [f32])| {
        let (b, i) = (row / a.sq.max(1), row % a.sq.max(1));
        let limit = if a.causal { (i as isize + offset + 1).clamp(0, a.sk as isize) as usize } else { a.sk };
        let mut scores = vec![0.0f32; limit];
        for h in 0..a.heads {
            let q = &a.q[(b * a.sq + i) * width + h * a.head_dim..][..a.head_dim];
            let oh = &mut o[h * a.head_dim..(h + 1) * a.head_dim];
            oh.fill(0.0);
            if limit == 0 {
                continue;
            }
            let mut max = f32::NEG_INFINITY;
            for (j, s) in scores.iter_mut().enumerate() {
                *s = dot(q, &a.k[(b * a.sk + j) * width + h * a.head_dim..][..a.head_dim]) * a.scale;
                max = max.max(*s);
            }
            let mut sum = 0.0;
            for s in scores.iter_mut() {
                *s = exp(*s - max);
                sum += *s;
            }
            for (j, &p) in scores.iter().enumerate() {
                let v = &a.v[(b * a.sk + j) * width + h * a.head_dim..][..a.head_dim];
                oh.iter_mut().zip(v).for_each(|(o, &v)| *o += p * v);
            }
            let inv = 1.0 / sum;
            oh.iter_mut().for_each(|v| *v *= inv);
        }
    };
    if width == 0 {
        return;
    }
    if a.batch * a.sq * a.sk * width > super::math::GRAIN {
        out.par_chunks_mut(width).enumerate().for_each(row_task);
    } else {
        out.chunks_mut(width).enumerate().for_each(row_task);
    }
}
