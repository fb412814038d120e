//! AVX2+FMA micro-kernel, 6 × 16 f32.
//!
//! Algorithm: 12 ymm accumulators (6 rows × two 8-lane vectors); each step of k loads one
//! 16-wide row of packed B and broadcasts 6 elements of packed A: 12 FMAs per 8 loads.
//! Limits: full tiles only (edges go through a padded scratch tile).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::kernel::MicroKernel;

/// The AVX2+FMA kernel.
pub struct Avx2;

const MR: usize = 6;
const NR: usize = 16;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
    let mut lo = [_mm256_setzero_ps(); MR];
    let mut hi = [_mm256_setzero_ps(); MR];
    let (mut a, mut b) = (a, b);
    for _ in 0..kc {
        // SAFETY: the caller guarantees kc·NR floats behind `b` and kc·MR behind `a`; each
        // step reads one row of B and one column of A, then advances by exactly that.
        unsafe {
            let b0 = _mm256_loadu_ps(b);
            let b1 = _mm256_loadu_ps(b.add(8));
            for i in 0..MR {
                let ai = _mm256_set1_ps(*a.add(i));
                lo[i] = _mm256_fmadd_ps(ai, b0, lo[i]);
                hi[i] = _mm256_fmadd_ps(ai, b1, hi[i]);
            }
            a = a.add(MR);
            b = b.add(NR);
        }
    }
    for i in 0..MR {
        // SAFETY: the caller guarantees MR rows of NR floats at stride `ldc` behind `c`.
        unsafe {
            let row = c.add(i * ldc);
            if accumulate {
                lo[i] = _mm256_add_ps(lo[i], _mm256_loadu_ps(row));
                hi[i] = _mm256_add_ps(hi[i], _mm256_loadu_ps(row.add(8)));
            }
            _mm256_storeu_ps(row, lo[i]);
            _mm256_storeu_ps(row.add(8), hi[i]);
        }
    }
}

impl MicroKernel for Avx2 {
    const MR: usize = MR;
    const NR: usize = NR;
    const NAME: &'static str = "avx2+fma 6x16";

    unsafe fn run(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded contract: valid panels and tile, AVX2 and FMA present (the caller
        // selects this kernel only after detecting them).
        unsafe {
            kernel(kc, a, b, c, ldc, accumulate)
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (kc, a, b, c, ldc, accumulate);
    }
}
