//! INT8 GEMM for a few rows (decode steps, short requests) on AVX-512 VNNI, reading the weight
//! `B [n, k]` where it lies instead of packing it: packing touches every weight byte for a
//! product that uses each one only `m` times.
//!
//! Algorithm: A's rows are copied once, offset by 128 to unsigned bytes (as in
//! [`super::vnni`]); then for 4 columns at a time, over k in 64-byte chunks (the tail by masked
//! loads, which read zeros), each chunk of the 4 weight rows is loaded once and fed to
//! `vpdpbusd` with each of the `R` rows of A and with a vector of 128s — the last gives the
//! per-column offset correction `128·Σ_k b` in the same pass. Lanes are summed at the end
//! of each column group. Columns are grouped into 64-wide tiles handed to the same sinks as
//! the packed path, and tiles run in parallel when the product is large enough.
//! Limits: `R ≤ 4` rows per pass (more rows take more passes over B); `B` stored `[n, k]`,
//! `A` `[m, k]`; needs AVX-512F/BW and AVX-512 VNNI (the caller checks).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use rayon::prelude::*;

use super::vnni::{Problem, Sink};

/// Most rows this path takes (more go through the packed kernel).
pub const MAX_ROWS: usize = 8;
/// Columns per tile handed to the sink.
const TILE_N: usize = 64;
/// Below this many multiply-adds the tiles run on the calling thread.
const PARALLEL_MACS: usize = 1 << 20;

/// `tile[r·TILE_N + c] = Σ_k a[r][k]·b[j0 + c][k]` for `R` rows and `cols ≤ TILE_N` columns;
/// `a` holds the rows offset to unsigned (`R·k` bytes), `b` all of `B`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile_kernel<const R: usize>(k: usize, a: &[u8], b: &[i8], j0: usize, cols: usize, tile: &mut [i32]) {
    let chunks = k / 64;
    let tail = k % 64;
    let mask: __mmask64 = if tail == 0 { 0 } else { (1u64 << tail) - 1 };
    let offset = _mm512_set1_epi8(-128i8);
    let mut c = 0;
    while c < cols {
        let width = 4.min(cols - c);
        let mut acc = [[_mm512_setzero_si512(); 4]; R];
        let mut comp = [_mm512_setzero_si512(); 4];
        // Columns past `cols` reuse the last real one (their sums are not stored).
        let rows: [usize; 4] = std::array::from_fn(|q| (j0 + c + q.min(width - 1)) * k);
        for ch in 0..chunks + usize::from(tail > 0) {
            let at = ch * 64;
            let m = if ch < chunks { u64::MAX } else { mask };
            // SAFETY: each masked load reads only bytes `at .. at + 64` selected by `m`, all
            // inside row `rows[q] / k` of B (k bytes) or row `r` of A (k bytes); masked-off
            // lanes are not accessed.
            unsafe {
                let bv: [__m512i; 4] =
                    std::array::from_fn(|q| _mm512_maskz_loadu_epi8(m, b.as_ptr().add(rows[q] + at).cast()));
                for q in 0..4 {
                    comp[q] = _mm512_dpbusd_epi32(comp[q], _mm512_maskz_mov_epi8(m, offset), bv[q]);
                }
                for r in 0..R {
                    let av = _mm512_maskz_loadu_epi8(m, a.as_ptr().add(r * k + at).cast());
                    for q in 0..4 {
                        acc[r][q] = _mm512_dpbusd_epi32(acc[r][q], av, bv[q]);
                    }
                }
            }
        }
        for q in 0..width {
            let fix = _mm512_reduce_add_epi32(comp[q]);
            for r in 0..R {
                tile[r * TILE_N + c + q] = _mm512_reduce_add_epi32(acc[r][q]).wrapping_sub(fix);
            }
        }
        c += 4;
    }
}

/// Run `p` (few rows, `B` stored `[n, k]`, `A` `[m, k]`) through `sink`, `R` rows per pass.
#[cfg(target_arch = "x86_64")]
fn rows_pass<const R: usize>(p: &Problem, a_u8: &[u8], batch: usize, row0: usize, sink: &dyn Sink) {
    let k = p.k;
    let b = if p.b_shared { p.b } else { &p.b[batch * p.k * p.n..][..p.k * p.n] };
    let tiles = p.n.div_ceil(TILE_N);
    let run = |t: usize| {
        let mut tile = [0i32; 4 * TILE_N];
        let j0 = t * TILE_N;
        let cols = TILE_N.min(p.n - j0);
        // SAFETY: AVX-512 VNNI was detected by the caller; `a_u8` holds R rows of k bytes and
        // `b` n rows of k bytes, columns j0 .. j0 + cols < n.
        unsafe { tile_kernel::<R>(k, a_u8, b, j0, cols, &mut tile) };
        sink.tile(batch, row0, j0, R, cols, &tile[..R * TILE_N], TILE_N);
    };
    if R * p.n * p.k >= PARALLEL_MACS && tiles > 1 && rayon::current_num_threads() > 1 {
        (0..tiles).into_par_iter().for_each(run);
    } else {
        (0..tiles).for_each(run);
    }
}

/// Whether [`run`] takes `p`.
pub fn fits(p: &Problem) -> bool {
    p.m <= MAX_ROWS && p.trans_b && !p.trans_a && p.k > 0
}

/// Run a few-row product (see [`fits`]) through `sink`. AVX-512 VNNI only.
pub fn run(p: &Problem, sink: &dyn Sink) {
    #[cfg(target_arch = "x86_64")]
    for batch in 0..p.batch {
        let mut row0 = 0;
        while row0 < p.m {
            let r = (p.m - row0).min(4);
            let a = &p.a[(batch * p.m + row0) * p.k..][..r * p.k];
            let a_u8: Vec<u8> = a.iter().map(|&v| (v as u8) ^ 0x80).collect();
            match r {
                1 => rows_pass::<1>(p, &a_u8, batch, row0, sink),
                2 => rows_pass::<2>(p, &a_u8, batch, row0, sink),
                3 => rows_pass::<3>(p, &a_u8, batch, row0, sink),
                _ => rows_pass::<4>(p, &a_u8, batch, row0, sink),
            }
            row0 += r;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, sink);
}
