//! Helpers of the fast tier: the vectorisable `exp` (shared with the GEMM epilogue) and a
//! splitter that spreads work over the thread pool only when it pays.

use rayon::prelude::*;

use crate::features::Isa;

pub use crate::epilogue::exp;

/// Run `f` compiled for the widest SIMD this CPU has. The compiler vectorises plain loops only
/// for the target it was told about (baseline x86-64 is SSE2); inlining `f` into a function
/// with AVX-512 or AVX2 enabled lets the same loop use those registers. Chosen at run time.
#[inline(always)]
pub fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
        fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2,fma,f16c")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        match Isa::active() {
            // SAFETY: `Isa::active` only returns a level whose features were all detected
            // on this CPU (AVX-512 F/BW/VL/DQ come with AVX2, FMA and F16C).
            Isa::Avx512 => return unsafe { avx512(f) },
            // SAFETY: as above: AVX2, FMA and F16C were detected.
            Isa::Avx2 => return unsafe { avx2(f) },
            Isa::Portable => {}
        }
    }
    f()
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
        simd(|| f(x, out));
    } else {
        x.par_chunks(chunk).zip(out.par_chunks_mut(chunk)).for_each(|(a, o)| simd(|| f(a, o)));
    }
}
