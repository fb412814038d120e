//! Fast fused attention: flash-style online softmax that never materialises the score matrix.
//!
//! Algorithm: the queries of each sequence are cut into chunks of `QC` rows — one parallel
//! task each, writing only its own rows of the output. For each head, a chunk walks the
//! sequence's keys in blocks of `KB`: scores of the block for every query of the chunk
//! (masked keys are −∞, the pair bias added), the running max `m`, the rescale `e^(m_old −
//! m_new)` of the accumulator and normaliser, then `acc += Σ p·V`. The key block is reused by
//! all `QC` queries while it is in L1. Memory: `QC·(Dh + KB + 2)` floats per task, whatever the
//! sequence length. A query that saw no key writes zeros.

use omnifuse_core::attention::visible;
use rayon::prelude::*;

use super::math::{exp, simd};
use crate::kernels::FusedAttentionArgs;

/// Queries per task.
const QC: usize = 16;
/// Keys per block.
const KB: usize = 64;

fn dot(a: &[f32], b: &[f32]) -> f32 {
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

/// One task: query rows `r0..r0 + rows` of sequence `s`, all heads, into `out` (those rows).
fn chunk(a: &FusedAttentionArgs, s: usize, r0: usize, rows: usize, out: &mut [f32]) {
    let spec = &a.spec;
    let (h_n, dh, m) = (spec.heads, a.head_dim, spec.modalities);
    let group = spec.heads / spec.kv_heads;
    let ((q0, lq), (k0, lk)) = (a.seq_q[s], a.seq_k[s]);
    let mut acc = vec![0.0f32; rows * dh];
    let mut run_max = [f32::NEG_INFINITY; QC];
    let mut run_sum = [0.0f32; QC];
    let mut p = [[0.0f32; KB]; QC];
    for h in 0..h_n {
        let kvh = h / group;
        acc.fill(0.0);
        run_max.fill(f32::NEG_INFINITY);
        run_sum.fill(0.0);
        for kb in (0..lk).step_by(KB) {
            let kn = KB.min(lk - kb);
            for r in 0..rows {
                let i = r0 + r;
                let q = &a.q[((q0 + i) * h_n + h) * dh..][..dh];
                let mq = a.mod_q[q0 + i] as usize;
                let mut block_max = f32::NEG_INFINITY;
                for t in 0..kn {
                    let j = kb + t;
                    let mk = a.mod_k[k0 + j] as usize;
                    p[r][t] = if visible(spec.mask, a.pairs, m, i, j, lq, lk, mq, mk) {
                        let k = &a.k[((k0 + j) * spec.kv_heads + kvh) * dh..][..dh];
                        let bias = a.bias.map_or(0.0, |b| b[(h * m + mq) * m + mk]);
                        dot(q, k) * a.scale + bias
                    } else {
                        f32::NEG_INFINITY
                    };
                    block_max = block_max.max(p[r][t]);
                }
                if block_max == f32::NEG_INFINITY {
                    p[r][..kn].fill(0.0);
                    continue;
                }
                let new_max = run_max[r].max(block_max);
                let correction = if run_max[r] == f32::NEG_INFINITY { 0.0 } else { exp(run_max[r] - new_max) };
                run_max[r] = new_max;
                let mut block_sum = 0.0;
                for t in 0..kn {
                    let e = if p[r][t] == f32::NEG_INFINITY { 0.0 } else { exp(p[r][t] - new_max) };
                    p[r][t] = e;
                    block_sum += e;
                }
                run_sum[r] = run_sum[r] * correction + block_sum;
                let o = &mut acc[r * dh..(r + 1) * dh];
                if correction != 1.0 {
                    o.iter_mut().for_each(|x| *x *= correction);
                }
                for t in 0..kn {
                    let w = p[r][t];
                    if w != 0.0 {
                        let v = &a.v[((k0 + kb + t) * spec.kv_heads + kvh) * dh..][..dh];
                        o.iter_mut().zip(v).for_each(|(x, &y)| *x += w * y);
                    }
                }
            }
        }
        for r in 0..rows {
            let dst = &mut out[(r * h_n + h) * dh..][..dh];
            if run_sum[r] > 0.0 {
                let inv = 1.0 / run_sum[r];
                dst.iter_mut().zip(&acc[r * dh..(r + 1) * dh]).for_each(|(d, &x)| *d = x * inv);
            } else {
                dst.fill(0.0);
            }
        }
    }
}

/// Fused varlen attention, chunks of queries in parallel.
pub fn fused_attention(a: &FusedAttentionArgs, out: &mut [f32]) {
    let row = a.spec.heads * a.head_dim;
    if row == 0 {
        return;
    }
    // Cut the output into (sequence, first row, rows) pieces, in order, each its own slice.
    let mut pieces = Vec::new();
    let mut rest = &mut out[..];
    for (s, &(_, lq)) in a.seq_q.iter().enumerate() {
        for r0 in (0..lq).step_by(QC) {
            let rows = QC.min(lq - r0);
            let (head, tail) = rest.split_at_mut(rows * row);
            pieces.push((s, r0, rows, head));
            rest = tail;
        }
    }
    let work = a.seq_q.iter().zip(a.seq_k).map(|(q, k)| q.1 * k.1).sum::<usize>() * row;
    if work > super::math::GRAIN && pieces.len() > 1 {
        pieces.into_par_iter().for_each(|(s, r0, rows, o)| simd(|| chunk(a, s, r0, rows, o)));
    } else {
        for (s, r0, rows, o) in pieces {
            simd(|| chunk(a, s, r0, rows, o));
        }
    }
}
