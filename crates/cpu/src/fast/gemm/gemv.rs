//! Skinny products (at most [`MAX_ROWS`] rows of output per batch, e.g. decoding one token)
//! without packing: a packed GEMM would copy all of B for a handful of rows and run a 6-row
//! kernel mostly on padding, while these products are bound by reading B once.
//!
//! Algorithm: the output columns are split into chunks of [`CHUNK`], in parallel. With B
//! stored `[K, N]` a chunk streams four rows of B at a time and accumulates
//! `out_i += Σ a_ip · B[p, chunk]` into every output row segment (axpy form, vectorised
//! across columns); with B stored `[N, K]` (PyTorch `Linear` weights) every output is a dot
//! product of two contiguous rows, computed for four rows of B against two rows of A at a
//! time over 16 independent lanes (8 vector accumulators, four streams from memory). Both are
//! compiled for AVX-512 or AVX2+FMA when the active SIMD level has them. The epilogue is
//! applied to each finished row segment.
//! Limits: plain multiply-add (no FMA contraction) and a different summation order, so
//! results can differ from the packed path in the last bits; `m ≤ MAX_ROWS`.

use rayon::prelude::*;

use crate::features::Isa;
use crate::kernels::GemmArgs;

/// Products with at most this many output rows per batch take this path.
pub const MAX_ROWS: usize = 8;

/// Columns per task (a multiple of 16): each row's segment and a B row segment stay in L1.
const CHUNK: usize = 512;

/// Below this many multiply-adds per batch, the work stays on the calling thread.
const PARALLEL_MACS: usize = 1 << 18;

/// Define `$name(isa, args…)`, which runs `$body` (a call of `#[inline(always)]` code)
/// compiled for AVX-512 or AVX2+FMA when `isa` says the CPU has them, else for the build
/// target.
macro_rules! dispatch {
    ($name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        fn $name(isa: Isa, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) $body
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $body
                match isa {
                    // SAFETY: `Isa::Avx512` is only used where AVX-512F was detected.
                    Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: `Isa::Avx2` is only used where AVX2 and FMA were detected.
                    Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    Isa::Portable => {}
                }
            }
            let _ = isa;
            $body
        }
    };
}

/// `segs[i] = Σ_p a[i][p] · b[p·ldb + j0 ..][..len]` for B stored `[K, N]`, four rows of B
/// per pass over the output segment (four streams in flight, a quarter of the stores).
#[inline(always)]
fn axpy_rows(a: &[&[f32]], b: &[f32], ldb: usize, j0: usize, segs: &mut [&mut [f32]]) {
    for s in segs.iter_mut() {
        s.fill(0.0);
    }
    let k = a.first().map_or(0, |r| r.len());
    let len = segs.first().map_or(0, |s| s.len());
    let brow = |p: usize| &b[p * ldb + j0..][..len];
    let mut p = 0;
    while p + 4 <= k {
        let (b0, b1, b2, b3) = (brow(p), brow(p + 1), brow(p + 2), brow(p + 3));
        for (s, ar) in segs.iter_mut().zip(a) {
            let (x0, x1, x2, x3) = (ar[p], ar[p + 1], ar[p + 2], ar[p + 3]);
            for ((((o, &y0), &y1), &y2), &y3) in s.iter_mut().zip(b0).zip(b1).zip(b2).zip(b3) {
                *o += x0 * y0 + x1 * y1 + x2 * y2 + x3 * y3;
            }
        }
        p += 4;
    }
    for p in p..k {
        let b0 = brow(p);
        for (s, ar) in segs.iter_mut().zip(a) {
            let x = ar[p];
            for (o, &y) in s.iter_mut().zip(b0) {
                *o += x * y;
            }
        }
    }
}

/// Dot product over 16 independent lanes (a shape the compiler vectorises; a plain float
/// sum would have to stay in order and scalar).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let k = a.len().min(b.len());
    let (ac, atail) = a[..k].as_chunks::<16>();
    let (bc, btail) = b[..k].as_chunks::<16>();
    let mut acc = [0.0f32; 16];
    for (av, bv) in ac.iter().zip(bc) {
        for l in 0..16 {
            acc[l] += av[l] * bv[l];
        }
    }
    let tail: f32 = atail.iter().zip(btail).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Dot products of `a` with four rows of B at once: four independent streams from memory
/// keep more loads in flight than one.
#[inline(always)]
fn dot4(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    let k = a.len();
    let (ac, atail) = a.as_chunks::<16>();
    let bc: [&[[f32; 16]]; 4] = b.map(|r| r[..k].as_chunks::<16>().0);
    let (mut s0, mut s1, mut s2, mut s3) = ([0.0f32; 16], [0.0f32; 16], [0.0f32; 16], [0.0f32; 16]);
    // Zipped iterators, so no bounds check stands in the vectoriser's way.
    for ((((av, b0), b1), b2), b3) in ac.iter().zip(bc[0]).zip(bc[1]).zip(bc[2]).zip(bc[3]) {
        for l in 0..16 {
            s0[l] += av[l] * b0[l];
            s1[l] += av[l] * b1[l];
            s2[l] += av[l] * b2[l];
            s3[l] += av[l] * b3[l];
        }
    }
    let acc = [s0, s1, s2, s3];
    let full = k - atail.len();
    std::array::from_fn(|t| {
        let tail: f32 = atail.iter().zip(&b[t][full..k]).map(|(x, y)| x * y).sum();
        acc[t].iter().sum::<f32>() + tail
    })
}

/// [`dot4`] for two rows of A at once: each B chunk loaded serves both.
#[inline(always)]
fn dot2x4(a0: &[f32], a1: &[f32], b: [&[f32]; 4]) -> [[f32; 4]; 2] {
    let k = a0.len().min(a1.len());
    let (ac0, _) = a0[..k].as_chunks::<16>();
    let (ac1, _) = a1[..k].as_chunks::<16>();
    let bc: [&[[f32; 16]]; 4] = b.map(|r| r[..k].as_chunks::<16>().0);
    let mut s = [[0.0f32; 16]; 8];
    let [mut s0, mut s1, mut s2, mut s3, mut s4, mut s5, mut s6, mut s7] = s;
    for (((((u, v), b0), b1), b2), b3) in ac0.iter().zip(ac1).zip(bc[0]).zip(bc[1]).zip(bc[2]).zip(bc[3]) {
        for l in 0..16 {
            s0[l] += u[l] * b0[l];
            s1[l] += u[l] * b1[l];
            s2[l] += u[l] * b2[l];
            s3[l] += u[l] * b3[l];
            s4[l] += v[l] * b0[l];
            s5[l] += v[l] * b1[l];
            s6[l] += v[l] * b2[l];
            s7[l] += v[l] * b3[l];
        }
    }
    s = [s0, s1, s2, s3, s4, s5, s6, s7];
    let full = ac0.len() * 16;
    std::array::from_fn(|r| {
        let ar = if r == 0 { a0 } else { a1 };
        std::array::from_fn(|t| {
            let tail: f32 = ar[full..k].iter().zip(&b[t][full..k]).map(|(x, y)| x * y).sum();
            s[4 * r + t].iter().sum::<f32>() + tail
        })
    })
}

/// `segs[i][j] = dot(a[i], B[j0 + j])` for B stored `[N, K]` (row `j` at `j·k`).
#[inline(always)]
fn dot_rows(a: &[&[f32]], b: &[f32], k: usize, j0: usize, segs: &mut [&mut [f32]]) {
    let len = segs.first().map_or(0, |s| s.len());
    let row = |j: usize| &b[(j0 + j) * k..][..k];
    let mut j = 0;
    while j + 4 <= len {
        let rows = [row(j), row(j + 1), row(j + 2), row(j + 3)];
        let mut pairs = segs.chunks_exact_mut(2);
        for (sp, ap) in (&mut pairs).zip(a.chunks_exact(2)) {
            let d = dot2x4(ap[0], ap[1], rows);
            sp[0][j..j + 4].copy_from_slice(&d[0]);
            sp[1][j..j + 4].copy_from_slice(&d[1]);
        }
        if let (Some(s), Some(ar)) = (pairs.into_remainder().first_mut(), a.chunks_exact(2).remainder().first()) {
            s[j..j + 4].copy_from_slice(&dot4(ar, rows));
        }
        j += 4;
    }
    for j in j..len {
        for (s, ar) in segs.iter_mut().zip(a) {
            s[j] = dot(ar, row(j));
        }
    }
}

dispatch!(chunk_kn(a: &[&[f32]], b: &[f32], ldb: usize, j0: usize, segs: &mut [&mut [f32]]) {
    axpy_rows(a, b, ldb, j0, segs)
});

dispatch!(chunk_nk(a: &[&[f32]], b: &[f32], k: usize, j0: usize, segs: &mut [&mut [f32]]) {
    dot_rows(a, b, k, j0, segs)
});

/// The product of batch `batch` (`g.m ≤ MAX_ROWS` rows) into `c` (`m × n`), calling
/// `finish(row, j0, segment)` on each finished row segment (row counted across batches).
/// `isa` must be one of [`Isa::available`].
pub fn gemv_batch(
    isa: Isa,
    g: &GemmArgs<f32>,
    batch: usize,
    c: &mut [f32],
    finish: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    let (m, n, k) = (g.m, g.n, g.k);
    debug_assert!(m <= MAX_ROWS && m > 0 && n > 0);
    let a = &g.a[g.a_offset(batch)..][..m * k];
    let b = &g.b[g.b_offset(batch)..][..k * n];
    // Rows of A, gathered when A is stored transposed.
    let gathered: Vec<f32> = if g.trans_a { (0..m * k).map(|e| a[(e % k) * m + e / k]).collect() } else { Vec::new() };
    let src = if g.trans_a { &gathered[..] } else { a };
    let rows: Vec<&[f32]> = src.chunks_exact(k.max(1)).take(m).collect();
    // One task per column chunk, holding that chunk's segment of every output row.
    let chunks = n.div_ceil(CHUNK);
    let mut tasks: Vec<Vec<&mut [f32]>> = (0..chunks).map(|_| Vec::with_capacity(m)).collect();
    for row in c.chunks_exact_mut(n) {
        for (t, seg) in tasks.iter_mut().zip(row.chunks_mut(CHUNK)) {
            t.push(seg);
        }
    }
    let work = |(ci, mut segs): (usize, Vec<&mut [f32]>)| {
        let j0 = ci * CHUNK;
        if k == 0 {
            segs.iter_mut().for_each(|s| s.fill(0.0));
        } else if g.trans_b {
            chunk_nk(isa, &rows, b, k, j0, &mut segs);
        } else {
            chunk_kn(isa, &rows, b, n, j0, &mut segs);
        }
        for (i, s) in segs.iter_mut().enumerate() {
            finish(batch * m + i, j0, s);
        }
    };
    if m * n * k >= PARALLEL_MACS && chunks > 1 && rayon::current_num_threads() > 1 {
        tasks.into_par_iter().enumerate().for_each(work);
    } else {
        tasks.into_iter().enumerate().for_each(work);
    }
}
