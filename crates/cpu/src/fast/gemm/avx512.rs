//! AVX-512F micro-kernel: a C tile of `MR` rows × `NV` 16-lane vectors, shipped as 6 × 64.
//!
//! Algorithm: `MR·NV` zmm accumulators hold the C tile. Each step of k loads one row of the
//! packed B panel (`NV` vectors), broadcasts the `MR` elements of the packed A column and
//! issues `MR·NV` FMAs; for 6 × 64 that is 24 accumulators, 4 loads + 6 broadcasts per 24
//! FMAs, which keeps both FMA ports busy with the load ports to spare. The B panel row
//! `PREFETCH` steps ahead is prefetched into L1 (a 64-wide B micro-panel is larger than L1,
//! so it streams from L2); the C tile is prefetched at the start and read (when
//! accumulating) and written once at the end.
//! `run_rows` runs the same loop on fewer rows (1 to 5) for edge row panels and skinny
//! products, reading the first rows of the 6-wide A panel.
//! Limits: full-width tiles only (column edges go through a padded scratch tile); `MR·NV + NV + 1 ≤ 32`
//! so nothing spills; needs AVX-512F (the caller checks).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::kernel::MicroKernel;

/// How many k steps ahead the kernel prefetches the B panel.
#[cfg(target_arch = "x86_64")]
const PREFETCH: usize = 8;

/// An AVX-512 kernel of `MR` rows × `16·NV` columns.
pub struct Avx512<const MR: usize, const NV: usize>;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn kernel<const MR: usize, const NV: usize>(
    kc: usize,
    a: *const f32,
    a_step: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let nr = 16 * NV;
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    // Bring the C tile toward L1 while the k loop runs; it is read (or written) at the end.
    // Prefetch never faults, and wrapping_add keeps the address arithmetic defined.
    for i in 0..MR {
        for v in 0..NV {
            _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc + 16 * v) as *const i8);
        }
    }
    let (mut a, mut b) = (a, b);
    for _ in 0..kc {
        for v in 0..NV {
            _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(PREFETCH * nr + 16 * v) as *const i8);
        }
        // SAFETY: the caller guarantees `b` holds kc·nr and `a` kc·a_step readable floats
        // (a_step ≥ MR); each step reads one row of B and the first MR floats of one column
        // of A, then advances by one row and one column.
        unsafe {
            let mut bv = [_mm512_setzero_ps(); NV];
            for v in 0..NV {
                bv[v] = _mm512_loadu_ps(b.add(16 * v));
            }
            for i in 0..MR {
                let ai = _mm512_set1_ps(*a.add(i));
                for v in 0..NV {
                    acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
                }
            }
            a = a.add(a_step);
            b = b.add(nr);
        }
    }
    for i in 0..MR {
        for v in 0..NV {
            // SAFETY: the caller guarantees MR rows of nr floats at stride `ldc` behind `c`.
            unsafe {
                let p = c.add(i * ldc + 16 * v);
                let r = if accumulate { _mm512_add_ps(acc[i][v], _mm512_loadu_ps(p)) } else { acc[i][v] };
                _mm512_storeu_ps(p, r);
            }
        }
    }
}

impl<const MR: usize, const NV: usize> MicroKernel for Avx512<MR, NV> {
    const MR: usize = MR;
    const NR: usize = 16 * NV;
    const KC: usize = 512;
    const MC: usize = 40 * MR;
    const NC: usize = 3072;
    const NAME: &'static str = "avx512";

    unsafe fn run(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded contract: valid panels and tile, AVX-512F present (the caller
        // selects this kernel only after detecting it).
        unsafe {
            kernel::<MR, NV>(kc, a, MR, b, c, ldc, accumulate)
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
                1 => kernel::<1, NV>(kc, a, MR, b, c, ldc, accumulate),
                2 => kernel::<2, NV>(kc, a, MR, b, c, ldc, accumulate),
                3 => kernel::<3, NV>(kc, a, MR, b, c, ldc, accumulate),
                4 => kernel::<4, NV>(kc, a, MR, b, c, ldc, accumulate),
                5 => kernel::<5, NV>(kc, a, MR, b, c, ldc, accumulate),
                _ => kernel::<MR, NV>(kc, a, MR, b, c, ldc, accumulate),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (rows, kc, a, b, c, ldc, accumulate);
    }
}
