//! Vectorisable f32 math for the fast tier: branch-free `exp` the compiler can turn into SIMD
//! over slices, and a helper that splits work across the thread pool only when it pays.

use rayon::prelude::*;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;

/// e^x for x in f32 range, ~2 ulp: range reduction by powers of two and a degree-6
/// polynomial. Saturates below −87.3 (returns ~1e-38, not 0) and above 88 (returns ~1.6e38).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.0);
    let n = (x * LOG2E).round();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Elements per parallel task: below this, work stays on the calling thread.
pub const GRAIN: usize = 1 << 14;

/// Run `f` over matching chunks of `x` and `out` (chunks of `rows · row_len` elements), in
/// parallel when the data is large enough.
pub fn par_rows<T: Sync, U: Send>(x: &[T], out: &mut [U], row_len: usize, f: impl Fn(&[T], &mut [U]) + Sync + Send) {
    let row_len = row_len.max(1);
    let rows_per_task = (GRAIN / row_len).max(1);
    let chunk = rows_per_task * row_len;
    if x.len() <= chunk {
        f(x, out);
    } else {
        x.par_chunks(chunk).zip(out.par_chunks_mut(chunk)).for_each(|(a, o)| f(a, o));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_is_accurate() {
        let mut worst = 0.0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = (x as f64).exp();
            worst = worst.max(((super::exp(x) as f64) - want).abs() / want);
            x += 0.0123;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
    }
}
