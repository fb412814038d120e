//! Reference 1-D "same" convolution: one f64 sum per output element.

use crate::kernels::Conv1dShape;

/// `out[b, t, co] = bias[co] + Σ_{r, ci} x[b, t·stride + r − pad, ci] · w[r, ci, co]`, zero
/// outside.
pub fn conv1d(s: Conv1dShape, x: &[f32], w: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let pad = (s.width - 1) / 2;
    for b in 0..s.b {
        for t in 0..s.lout() {
            for co in 0..s.cout {
                let mut acc = bias.map_or(0.0, |bv| bv[co] as f64);
                for r in 0..s.width {
                    let src = (t * s.stride) as isize + r as isize - pad as isize;
                    if src < 0 || src >= s.l as isize {
                        continue;
                    }
                    for ci in 0..s.cin {
                        acc +=
                            x[(b * s.l + src as usize) * s.cin + ci] as f64 * w[(r * s.cin + ci) * s.cout + co] as f64;
                    }
                }
                out[(b * s.lout() + t) * s.cout + co] = acc as f32;
            }
        }
    }
}
