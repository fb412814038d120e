//! i8 × i8 → i32 GEMM (wrapping on overflow, like the reference tier).
//!
//! Algorithm: B is packed once per batch as `n` rows of `kp` i16 (Bᵀ, k zero-padded to a
//! multiple of 32), and each block of `RB` rows of A likewise; every output is then a dot
//! product of two contiguous i16 rows, computed `RB` rows × 1 column at a time so each B row
//! loaded serves `RB` dot products. The dot product is written over fixed 32-lane arrays that
//! the compiler turns into `vpmaddwd` + `vpaddd` (AVX-512BW / AVX2) when the loop is compiled
//! for those features, which is chosen at run time. Blocks of rows run in parallel.
//! Limits: the products wrap exactly like the reference (i32 wrapping sums of i8·i8, which
//! is order-independent); the epilogue is ignored (always identity for i8). A VNNI kernel
//! is a later addition.

use rayon::prelude::*;

use crate::kernels::GemmArgs;

/// Rows of A per block (outputs computed per B row loaded).
const RB: usize = 4;
/// Lanes of the dot product (and the k padding).
const LANES: usize = 32;
/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_MACS: usize = 1 << 18;

/// `RB` dot products of the rows `a[r]` with `b` (all of the same length): one pass over `b`
/// with `RB` integer reductions, which the loop vectoriser turns into `vpmaddwd` + `vpaddd`.
#[inline(always)]
fn dots(a: &[&[i16]; RB], b: &[i16]) -> [i32; RB] {
    let [a0, a1, a2, a3] = *a;
    let (mut s0, mut s1, mut s2, mut s3) = (0i32, 0i32, 0i32, 0i32);
    let n = b.len().min(a0.len()).min(a1.len()).min(a2.len()).min(a3.len());
    let (a0, a1, a2, a3, b) = (&a0[..n], &a1[..n], &a2[..n], &a3[..n], &b[..n]);
    for p in 0..n {
        let y = i32::from(b[p]);
        s0 = s0.wrapping_add(i32::from(a0[p]) * y);
        s1 = s1.wrapping_add(i32::from(a1[p]) * y);
        s2 = s2.wrapping_add(i32::from(a2[p]) * y);
        s3 = s3.wrapping_add(i32::from(a3[p]) * y);
    }
    [s0, s1, s2, s3]
}

/// One block of up to `RB` output rows: `arows` are the widened A rows, `bt` the packed B.
#[inline(always)]
fn block(arows: &[i16], kp: usize, bt: &[i16], out: &mut [i32], n: usize) {
    let rows = out.len() / n;
    let zero = vec![0i16; kp];
    let a: [&[i16]; RB] = std::array::from_fn(|r| if r < rows { &arows[r * kp..(r + 1) * kp] } else { &zero[..] });
    for (j, brow) in bt.chunks_exact(kp).enumerate() {
        let d = dots(&a, brow);
        for r in 0..rows {
            out[r * n + j] = d[r];
        }
    }
}

/// [`block`] compiled for the active SIMD level (`Isa::active`, chosen at run time), so its
/// plain loops vectorise to AVX-512BW or AVX2 instead of the SSE2 baseline.
fn block_simd(arows: &[i16], kp: usize, bt: &[i16], out: &mut [i32], n: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw")]
        fn avx512(arows: &[i16], kp: usize, bt: &[i16], out: &mut [i32], n: usize) {
            block(arows, kp, bt, out, n)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(arows: &[i16], kp: usize, bt: &[i16], out: &mut [i32], n: usize) {
            block(arows, kp, bt, out, n)
        }
        use crate::features::Isa;
        match Isa::active() {
            // SAFETY: `Isa::Avx512` is only active where AVX-512F and AVX-512BW were detected.
            Isa::Avx512 => return unsafe { avx512(arows, kp, bt, out, n) },
            // SAFETY: `Isa::Avx2` is only active where AVX2 was detected.
            Isa::Avx2 => return unsafe { avx2(arows, kp, bt, out, n) },
            Isa::Portable => {}
        }
    }
    block(arows, kp, bt, out, n)
}

/// i8 GEMM, i32 output; see [`GemmArgs`] for the layout contract. The epilogue is ignored.
pub fn gemm_i8(g: &GemmArgs<i8>, out: &mut [i32]) {
    let (m, n, k) = (g.m, g.n, g.k);
    if out.is_empty() {
        return;
    }
    if k == 0 {
        out.fill(0);
        return;
    }
    let kp = k.div_ceil(LANES) * LANES;
    let parallel = m * n * k >= PARALLEL_MACS && rayon::current_num_threads() > 1;
    let mut bt = vec![0i16; n * kp];
    for batch in 0..g.batch {
        let a = &g.a[g.a_offset(batch)..][..m * k];
        if batch == 0 || !g.b_shared {
            let b = &g.b[g.b_offset(batch)..][..k * n];
            let pack = |(j, row): (usize, &mut [i16])| {
                for (p, v) in row[..k].iter_mut().enumerate() {
                    *v = i16::from(if g.trans_b { b[j * k + p] } else { b[p * n + j] });
                }
            };
            if parallel {
                bt.par_chunks_mut(kp).enumerate().for_each(pack);
            } else {
                bt.chunks_mut(kp).enumerate().for_each(pack);
            }
        }
        let c = &mut out[batch * m * n..(batch + 1) * m * n];
        let bt = &bt[..];
        let work = |(blk, cblk): (usize, &mut [i32])| {
            let rows = cblk.len() / n;
            let mut arows = vec![0i16; rows * kp];
            for r in 0..rows {
                let i = blk * RB + r;
                for (p, v) in arows[r * kp..r * kp + k].iter_mut().enumerate() {
                    *v = i16::from(if g.trans_a { a[p * m + i] } else { a[i * k + p] });
                }
            }
            block_simd(&arows, kp, bt, cblk, n);
        };
        if parallel {
            c.par_chunks_mut(RB * n).enumerate().for_each(work);
        } else {
            c.chunks_mut(RB * n).enumerate().for_each(work);
        }
    }
}
