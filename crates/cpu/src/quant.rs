//! The one definition of per-row (per-token) dynamic quantisation that every CPU tier uses:
//! `scale = max|x| / 127` (1 for an all-zero row, so the scale is always positive and finite)
//! and `q = clamp(round(x / scale), −127, 127)`, rounding half away from zero, in f32 exactly
//! as written — so the reference and the fast tier produce the same i8 values bit for bit.

use rayon::prelude::*;

/// Above this many elements rows are quantised in parallel (the result is the same).
const PARALLEL_ELEMS: usize = 1 << 16;

/// Quantise one row into `out`; returns its scale. A NaN element quantises to 0.
#[inline]
pub fn quantize_row(x: &[f32], out: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0.0f32, |m, &v| if v.abs() > m { v.abs() } else { m });
    let scale = if amax > 0.0 && amax.is_finite() { amax / 127.0 } else { 1.0 };
    for (o, &v) in out.iter_mut().zip(x) {
        // `as` saturates and maps NaN to 0.
        *o = (v / scale).round().clamp(-127.0, 127.0) as i8;
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
