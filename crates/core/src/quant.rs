//! Symmetric INT8 quantisation, defined once for every backend and for weight preparation:
//! a row's step is `max|x| / 127` (1 for a row with no finite non-zero maximum, so a step is
//! always positive and finite), and `q = clamp(round(x / step), −127, 127)` with rounding half
//! away from zero and NaN → 0, in f32 exactly as written. Per-token activations use it per
//! row of A; weights use it per output channel (per row of a `[out, in]` matrix).

/// Quantise one row into `out`; returns its step.
#[inline(always)]
pub fn quantize_row(x: &[f32], out: &mut [i8]) -> f32 {
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

/// Requantise one value: `clamp(round(v / step), −127, 127)`, NaN to 0.
#[inline]
pub fn requantize(v: f32, step: f32) -> i8 {
    (v / step).round().clamp(-127.0, 127.0) as i8
}

/// Quantise a `[rows, k]` matrix row by row (a weight per output channel); returns the i8
/// values and one step per row.
pub fn quantize_matrix(x: &[f32], k: usize) -> (Vec<i8>, Vec<f32>) {
    let mut q = vec![0i8; x.len()];
    if k == 0 {
        return (q, Vec::new());
    }
    let steps = x.chunks_exact(k).zip(q.chunks_exact_mut(k)).map(|(r, o)| quantize_row(r, o)).collect();
    (q, steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_magnitude_maps_to_127_and_zero_rows_keep_a_unit_step() {
        let mut q = [0i8; 5];
        let s = quantize_row(&[0.5, -2.54, 1.0, 0.0, f32::NAN], &mut q);
        assert_eq!(s, 2.54 / 127.0);
        assert_eq!(q, [25, -127, 50, 0, 0]);
        let s = quantize_row(&[0.0; 5], &mut q);
        assert_eq!((s, q), (1.0, [0; 5]));
        let (m, steps) = quantize_matrix(&[1.0, -1.0, 0.0, 0.5], 2);
        assert_eq!((m, steps), (vec![127, -127, 0, 127], vec![1.0 / 127.0, 0.5 / 127.0]));
    }

    #[test]
    fn requantize_rounds_half_away_and_saturates() {
        assert_eq!(requantize(0.5, 1.0), 1);
        assert_eq!(requantize(-0.5, 1.0), -1);
        assert_eq!(requantize(1000.0, 1.0), 127);
        assert_eq!(requantize(f32::NAN, 1.0), 0);
    }
}
