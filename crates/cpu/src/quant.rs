//! Per-row (per-token) dynamic quantisation for the CPU tiers: the one definition in
//! `omnifuse_core::quant`, compiled here for the active SIMD level, over many rows in
//! parallel — so the reference and the fast tier produce the same i8 values bit for bit.

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
            omnifuse_core::quant::quantize_row(x, out)
        }
        #[target_feature(enable = "avx2,fma,sse4.1")]
        fn avx2(x: &[f32], out: &mut [i8]) -> f32 {
            omnifuse_core::quant::quantize_row(x, out)
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
    omnifuse_core::quant::quantize_row(x, out)
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

pub use omnifuse_core::quant::requantize;
