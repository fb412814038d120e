//! Fast fused attention for few queries per sequence (decode steps: one new token per request
//! against its KV cache or its fused sequence).
//!
//! Algorithm: no transposed copy of K (the tiled kernel's per-launch transpose costs as much as
//! the whole computation when a sequence has one query). One parallel task per sequence; for
//! each head and query row it takes dot products with the keys' rows in place (`Dh`
//! contiguous floats each, 16 lanes at a time), applies the scale, pair bias and mask, then a
//! two-pass softmax over the row's scores (a buffer of `Lk` floats — a decode row's scores
//! are few) and the weighted sum of V rows. A query that sees no key writes zeros, as in the
//! tiled kernel. Used when every sequence has at most [`MAX_QUERIES`] queries.

use omnifuse_core::attention::visible_block;
use rayon::prelude::*;

use super::attention::dot;
use super::math::exp;
use crate::features::Isa;
use crate::kernels::FusedAttentionArgs;

/// Most queries per sequence for which this path is taken.
pub const MAX_QUERIES: usize = 4;

/// Keys whose visibility is decided at once.
const KB: usize = 64;

/// Sequence `s`'s query rows, all heads, into `out` (those rows).
#[inline(always)]
fn sequence(a: &FusedAttentionArgs, s: usize, out: &mut [f32]) {
    let spec = &a.spec;
    let (h_n, dh, m) = (spec.heads, a.head_dim, spec.modalities);
    let group = spec.heads / spec.kv_heads.max(1);
    let ((q0, lq), (k0, lk)) = (a.seq_q[s], a.seq_k[s]);
    let kv_row = spec.kv_heads * dh;
    let mut p = vec![0.0f32; lk];
    let mut mk = [0usize; KB];
    let mut keep = [false; KB];
    let mut acc = vec![0.0f32; dh];
    for i in 0..lq {
        let mq = a.mod_q[q0 + i] as usize;
        for h in 0..h_n {
            let kvh = h / group;
            let q = &a.q[((q0 + i) * h_n + h) * dh..][..dh];
            let bias = a.bias.map(|b| &b[(h * m + mq) * m..(h * m + mq + 1) * m]);
            let mut max = f32::NEG_INFINITY;
            for kb in (0..lk).step_by(KB) {
                let kn = KB.min(lk - kb);
                for t in 0..kn {
                    mk[t] = a.mod_k[k0 + kb + t] as usize;
                }
                visible_block(spec.mask, a.pairs, m, i, kb, lq, lk, mq, &mk[..kn], &mut keep);
                for t in 0..kn {
                    let x = if keep[t] {
                        let k = &a.k[(k0 + kb + t) * kv_row + kvh * dh..][..dh];
                        let logit = dot(q, k) * a.scale;
                        bias.map_or(logit, |b| logit + b[mk[t]])
                    } else {
                        f32::NEG_INFINITY
                    };
                    max = max.max(x);
                    p[kb + t] = x;
                }
            }
            let dst = &mut out[(i * h_n + h) * dh..][..dh];
            if max == f32::NEG_INFINITY {
                dst.fill(0.0);
                continue;
            }
            acc.fill(0.0);
            let mut sum = 0.0f32;
            for (t, &x) in p.iter().enumerate() {
                if x == f32::NEG_INFINITY {
                    continue;
                }
                let w = exp(x - max);
                sum += w;
                let v = &a.v[(k0 + t) * kv_row + kvh * dh..][..dh];
                for (o, &vv) in acc.iter_mut().zip(v) {
                    *o = w.mul_add(vv, *o);
                }
            }
            let inv = 1.0 / sum;
            dst.iter_mut().zip(&acc).for_each(|(d, &x)| *d = x * inv);
        }
    }
}

/// [`sequence`] compiled for the active SIMD level.
fn run_sequence(a: &FusedAttentionArgs, s: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
        fn avx512(a: &FusedAttentionArgs, s: usize, out: &mut [f32]) {
            sequence(a, s, out)
        }
        #[target_feature(enable = "avx2,fma,f16c")]
        fn avx2(a: &FusedAttentionArgs, s: usize, out: &mut [f32]) {
            sequence(a, s, out)
        }
        match Isa::active() {
            // SAFETY: `Isa::active` returns a level only when all its features were detected.
            Isa::Avx512 => return unsafe { avx512(a, s, out) },
            // SAFETY: as above.
            Isa::Avx2 => return unsafe { avx2(a, s, out) },
            Isa::Portable => {}
        }
    }
    sequence(a, s, out)
}

/// Whether this path serves `a`: every sequence has at most [`MAX_QUERIES`] queries.
pub fn applies(a: &FusedAttentionArgs) -> bool {
    a.seq_q.iter().all(|&(_, lq)| lq <= MAX_QUERIES)
}

/// Fused varlen attention for few queries per sequence, sequences in parallel.
pub fn fused_attention_decode(a: &FusedAttentionArgs, out: &mut [f32]) {
    let row = a.spec.heads * a.head_dim;
    if row == 0 {
        return;
    }
    let mut pieces = Vec::with_capacity(a.seq_q.len());
    let mut rest = &mut out[..];
    for (s, &(_, lq)) in a.seq_q.iter().enumerate() {
        let (head, tail) = rest.split_at_mut(lq * row);
        pieces.push((s, head));
        rest = tail;
    }
    let work = a.seq_q.iter().zip(a.seq_k).map(|(q, k)| q.1 * k.1).sum::<usize>() * row;
    if work > super::math::GRAIN && pieces.len() > 1 {
        pieces.into_par_iter().for_each(|(s, o)| run_sequence(a, s, o));
    } else {
        for (s, o) in pieces {
            run_sequence(a, s, o);
        }
    }
}
