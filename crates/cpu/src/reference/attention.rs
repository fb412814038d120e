//! Reference attention: materialise the scores of each (batch, head), mask, softmax in f64,
//! multiply by V. A query that sees no key outputs zeros.

use crate::kernels::AttentionArgs;

/// Plain multi-head attention.
pub fn attention(a: &AttentionArgs, out: &mut [f32]) {
    let width = a.heads * a.head_dim;
    let offset = a.sk as isize - a.sq as isize;
    let mut scores = vec![0.0f64; a.sk];
    for b in 0..a.batch {
        for h in 0..a.heads {
            for i in 0..a.sq {
                let q = &a.q[(b * a.sq + i) * width + h * a.head_dim..][..a.head_dim];
                let visible = |j: usize| !a.causal || (j as isize) <= i as isize + offset;
                let mut max = f64::NEG_INFINITY;
                for j in 0..a.sk {
                    if !visible(j) {
                        continue;
                    }
                    let k = &a.k[(b * a.sk + j) * width + h * a.head_dim..][..a.head_dim];
                    let s: f64 = q.iter().zip(k).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>() * a.scale as f64;
                    scores[j] = s;
                    max = max.max(s);
                }
                let o = &mut out[(b * a.sq + i) * width + h * a.head_dim..][..a.head_dim];
                if max == f64::NEG_INFINITY {
                    o.fill(0.0);
                    continue;
                }
                let mut sum = 0.0;
                let mut acc = vec![0.0f64; a.head_dim];
                for j in 0..a.sk {
                    if !visible(j) {
                        continue;
                    }
                    let p = (scores[j] - max).exp();
                    sum += p;
                    let v = &a.v[(b * a.sk + j) * width + h * a.head_dim..][..a.head_dim];
                    for d in 0..a.head_dim {
                        acc[d] += p * v[d] as f64;
                    }
                }
                for d in 0..a.head_dim {
                    o[d] = (acc[d] / sum) as f32;
                }
            }
        }
    }
}
