//! The one definition of per-row (per-token) dynamic quantisation that every CPU tier uses:
//! `scale = max|x| / 127` (1 for an all-zero row, so the scale is always positive and finite)
//! and `q = clamp(round(x / scale), −127, 127)`, rounding half away from zero, in f32 exactly
//! as written — so the reference and the fast tier produce the same i8 values bit for bit.

use rayon::prelude::*;

/// Above this many elements rows are quantised in parallel (the result is the same).
const PARALLEL_ELEMS: usize = 1 << 16;

/// Quantise one row into `out`; returns its scale. A NaN element quantises to 0. Compiled
/// for the CPU's SIMD level (without SSE4.1 `round` is a library call per element); the
/// result is the same at every level, since each step is one correctly rounded operation.
pub fn quantize_row(x: &[f32], out: &mut [i8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
        fn avx512(x: &[f32], out: &mut [i8]) -> f32 {
            row(x, out)
        }
        #[target_feature(enable = "avx2,fma,sse4.1")]
        fn avx2(x: &[f32], out: &mut [i8]) -> f32 {
            row(x, out)
        }
        use crate::features::Isa;
        match Isa::active() {
            // SAFETY: `Isa::active` returns a level only when all its features were detected.
            Isa::Avx512 => return unsafe { avx512(x, out) },
            // SAFETY: as above.
            Isa::Avx2 => return unsafe { avx2(x, out) },
            Isa::Portable => {}
        }
    }
    row(x, out)
}

#[inline(always)]
fn row(x: &[f32], out: &mut [i8]) -> f32 {
    // Sixteen running maxima (lane-wise, so the loop vectorises); a NaN never compares
    // greater, so it is ignored, and max is order-independent, so the result is the same as
    // one running maximum.
    let mut lanes = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            let a = v.abs();
            *m = if a > *m { a } else { *m };
        }
    }
    let amax = chunks.remainder().iter().chain(&lanes).fold(0.0f32, |m, &v| if v.abs() > m { v.abs() } else { m });
    let scale = if amax > 0.0 && amax.is_finite() { amax / 127.0 } else { 1.0 };
    for (o, &v) in out.iter_mut().zip(x) {
        let q = (v / scale).round().clamp(-127.0, 127.0);
        let q = if q.is_nan() { 0.0 } else { q };
        // SAFETY: `q` is finite and within [-127, 127], so it fits an i32 exactly.
        *o = unsafe { q.to_int_unchecked::<i32>() } as i8;
    }
    scale
}

/// Quantise `rows` rows of `k` elements; returns the i8 data and one scale per row.
pub fn quantize_rows(x: &[f32], rows: usize, k: usize) -> (Vec<i8>, Vec<f32>) {
    let mut q = vec![0i8; x.len()];
    if k == 0 {
        return (q, vec![1.0; rows]);
    }
    let mut scales = vec![1.0f32; rows];
    let row = |((r, o), s): ((&[f32], &mut [i8]), &mut f32)| *s = quantize_row(r, o);
    if x.len() >= PARALLEL_ELEMS {
        x.par_chunks_exact(k).zip(q.par_chunks_exact_mut(k)).zip(scales.par_iter_mut()).for_each(row);
    } else {
        x.chunks_exact(k).zip(q.chunks_exact_mut(k)).zip(scales.iter_mut()).for_each(row);
    }
    (q, scales)
}

/// Requantise one value: `clamp(round(v / step), −127, 127)`, NaN to 0.
#[inline]
pub fn requantize(v: f32, step: f32) -> i8 {
    (v / step).round().clamp(-127.0, 127.0) as i8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_scale_maps_the_largest_magnitude_to_127() {
        let mut q = [0i8; 4];
        let s = quantize_row(&[0.5, -2.54, 1.27, 0.0], &mut q);
        assert_eq!(s, 2.54 / 127.0);
        assert_eq!(q, [25, -127, 64, 0]);
        let s = quantize_row(&[0.0, 0.0, 0.0, 0.0], &mut q);
        assert_eq!((s, q), (1.0, [0; 4]));
    }
}
