//! Reference fused attention: for each sequence, head and query, materialise the masked,
//! biased scores over the sequence's keys in f64, softmax, multiply by V. A query that sees
//! no key outputs zeros.

use omnifuse_core::attention::visible;

use crate::kernels::FusedAttentionArgs;

/// Plain per-sequence masked softmax attention.
pub fn fused_attention(a: &FusedAttentionArgs, out: &mut [f32]) {
    let s = &a.spec;
    let (h_n, dh, m) = (s.heads, a.head_dim, s.modalities);
    let group = s.heads / s.kv_heads;
    for (&(q0, lq), &(k0, lk)) in a.seq_q.iter().zip(a.seq_k) {
        for h in 0..h_n {
            let kvh = h / group;
            for i in 0..lq {
                let q = &a.q[((q0 + i) * h_n + h) * dh..][..dh];
                let mq = a.mod_q[q0 + i] as usize;
                let mut scores = vec![None; lk];
                for j in 0..lk {
                    let mk = a.mod_k[k0 + j] as usize;
                    if !visible(s.mask, a.pairs, m, i, j, lq, lk, mq, mk) {
                        continue;
                    }
                    let k = &a.k[((k0 + j) * s.kv_heads + kvh) * dh..][..dh];
                    let mut x: f64 = q.iter().zip(k).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>() * a.scale as f64;
                    if let Some(b) = a.bias {
                        x += b[(h * m + mq) * m + mk] as f64;
                    }
                    scores[j] = Some(x);
                }
                let o = &mut out[((q0 + i) * h_n + h) * dh..][..dh];
                let max = scores.iter().flatten().fold(f64::NEG_INFINITY, |x, &y| x.max(y));
                if max == f64::NEG_INFINITY {
                    o.fill(0.0);
                    continue;
                }
                let mut acc = vec![0.0f64; dh];
                let mut sum = 0.0;
                for (j, sc) in scores.iter().enumerate() {
                    let Some(sc) = sc else { continue };
                    let p = (sc - max).exp();
                    sum += p;
                    let v = &a.v[((k0 + j) * s.kv_heads + kvh) * dh..][..dh];
                    for d in 0..dh {
                        acc[d] += p * v[d] as f64;
                    }
                }
                for d in 0..dh {
                    o[d] = (acc[d] / sum) as f32;
                }
            }
        }
    }
}
