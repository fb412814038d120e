//! AVX-512F micro-kernels: a C tile of `MR` rows × `NV` 16-lane vectors.
//!
//! Algorithm: `MR·NV` zmm accumulators hold the C tile. Each step of k loads one row of the
//! packed B panel (`NV` vectors) and broadcasts the `MR` elements of the packed A column,
//! issuing `MR·NV` FMAs. The shipped shape is 12 × 32 (24 accumulators, 24 FMAs per 14 loads).
//! Limits: full tiles only (edges go through a padded scratch tile); `MR·NV + NV + 1 ≤ 32`.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::kernel::MicroKernel;

/// How many k steps ahead the kernel prefetches its panels.
const PREFETCH: usize = 8;

/// An AVX-512 kernel of `MR` rows × `16·NV` columns.
pub struct Avx512<const MR: usize, const NV: usize>;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn kernel<const MR: usize, const NV: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let nr = 16 * NV;
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    // Bring the C tile toward L1 while the k loop runs; it is read (or written) at the end.
    for i in 0..MR {
        for v in 0..NV {
            // Prefetch never faults; wrapping_add keeps the address computation defined.
            _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc + 16 * v) as *const i8);
        }
    }
    let (mut a, mut b) = (a, b);
    for _ in 0..kc {
        // SAFETY: the caller guarantees `b` holds kc·nr and `a` kc·MR readable floats; each
        // step reads one row of B and one column of A, then advances by exactly that.
        unsafe {
            // Fetch the B rows and A columns a few steps ahead into L1.
            for v in 0..NV {
                _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(PREFETCH * nr + 16 * v) as *const i8);
            }
            _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(PREFETCH * MR) as *const i8);
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
            a = a.add(MR);
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
    const NAME: &'static str = "avx512";

    unsafe fn run(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded contract: valid panels and tile, AVX-512F present (the caller
        // selects this kernel only after detecting it).
        unsafe {
            kernel::<MR, NV>(kc, a, b, c, ldc, accumulate)
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (kc, a, b, c, ldc, accumulate);
    }
}
