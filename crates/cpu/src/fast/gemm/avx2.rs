//! AVX2+FMA micro-kernel, 6 × 16 f32.
//!
//! Algorithm: 12 ymm accumulators hold the C tile (6 rows × two 8-lane vectors); each step of
//! k loads one 16-wide row of the packed B panel and broadcasts the 6 elements of the packed
//! A column: 12 FMAs per 2 loads + 6 broadcasts, 15 of the 16 ymm registers. The B row
//! `PREFETCH` steps ahead is prefetched; the C tile is prefetched at the start and read (when
//! accumulating) and written once at the end.
//! `run_rows` runs the same loop on 1 to 5 rows (edge row panels, skinny products).
//! Limits: full-width tiles only (column edges go through a padded scratch tile); needs AVX2 and FMA (the
//! caller checks).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::kernel::MicroKernel;

/// The AVX2+FMA kernel.
pub struct Avx2;

const MR: usize = 6;
const NR: usize = 16;
/// How many k steps ahead the kernel prefetches the B panel.
#[cfg(target_arch = "x86_64")]
const PREFETCH: usize = 8;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel<const R: usize>(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
    let mut lo = [_mm256_setzero_ps(); R];
    let mut hi = [_mm256_setzero_ps(); R];
    // Prefetch never faults, and wrapping_add keeps the address arithmetic defined.
    for i in 0..R {
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc + NR - 1) as *const i8);
    }
    let (mut a, mut b) = (a, b);
    for _ in 0..kc {
        _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(PREFETCH * NR) as *const i8);
        // SAFETY: the caller guarantees kc·NR floats behind `b` and kc·MR behind `a`; each
        // step reads one row of B and one column of A, then advances by exactly that.
        unsafe {
            let b0 = _mm256_loadu_ps(b);
            let b1 = _mm256_loadu_ps(b.add(8));
            for i in 0..R {
                let ai = _mm256_set1_ps(*a.add(i));
                lo[i] = _mm256_fmadd_ps(ai, b0, lo[i]);
                hi[i] = _mm256_fmadd_ps(ai, b1, hi[i]);
            }
            a = a.add(MR);
            b = b.add(NR);
        }
    }
    for i in 0..R {
        // SAFETY: the caller guarantees R rows of NR floats at stride `ldc` behind `c`.
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
    const KC: usize = 384;
    const MC: usize = 40 * MR;
    const NC: usize = 3072;
    const NAME: &'static str = "avx2+fma";

    unsafe fn run(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded contract: valid panels and tile, AVX2 and FMA present (the caller
        // selects this kernel only after detecting them).
        unsafe {
            kernel::<MR>(kc, a, b, c, ldc, accumulate)
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (kc, a, b, c, ldc, accumulate);
    }

    const ROW_EXACT: bool = true;

    unsafe fn run_rows(
        rows: usize,
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded contract; each arm reads the first `r ≤ MR` floats of every
        // MR-wide column of the A panel and writes `r` rows of C.
        unsafe {
            match rows.min(MR) {
                1 => kernel::<1>(kc, a, b, c, ldc, accumulate),
                2 => kernel::<2>(kc, a, b, c, ldc, accumulate),
                3 => kernel::<3>(kc, a, b, c, ldc, accumulate),
                4 => kernel::<4>(kc, a, b, c, ldc, accumulate),
                5 => kernel::<5>(kc, a, b, c, ldc, accumulate),
                _ => kernel::<MR>(kc, a, b, c, ldc, accumulate),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (rows, kc, a, b, c, ldc, accumulate);
    }
}
