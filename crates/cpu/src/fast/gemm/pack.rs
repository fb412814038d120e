//! Packing: copies a block of A or B, transposed or not, into the panel layout the
//! micro-kernels read sequentially, with zero padding past the matrix edge so every kernel
//! call is full size.
//!
//! Both operands are packed the same way. An operand is viewed as `X`, a logical `R × K`
//! matrix whose `R` axis is split into panels of width `W` (A: `X = A`, `R = M`, `W = MR`;
//! B: `X = Bᵀ`, `R = N`, `W = NR`). A panel is `[p][W]`: for each step `p` of the reduction,
//! the `W` consecutive elements of `X` the micro-kernel needs. `X` is stored either
//! *K-major* (`X[r][p]` at `p·ld + r`: A transposed, B plain), when a panel row is a
//! contiguous run of the source and the block is copied row by row of the source, or
//! *R-major* (`X[r][p]` at `r·ld + p`: A plain, B transposed), when it is transposed in
//! 16-step chunks (one cache line of each of the `W` source rows) through a small tile.
//! Both walk the source sequentially and prefetch ahead, because the source usually comes
//! from L3 or memory with a large stride, and waiting on it is most of what packing costs.

/// How many source rows (K-major) or 16-element chunks (R-major) ahead to prefetch.
const AHEAD: usize = 4;

/// A read-only view of the operand `X` (see the module docs).
#[derive(Clone, Copy)]
pub struct Operand<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Stride between consecutive `p` (K-major) or consecutive `r` (R-major).
    pub ld: usize,
    /// `X[r][p]` is at `r·ld + p` (else at `p·ld + r`).
    pub r_major: bool,
}

/// Hint the cache to fetch the line holding `data[i]`, if `i` is in bounds.
#[inline(always)]
fn prefetch(data: &[f32], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if i < data.len() {
        // SAFETY: prefetch has no architectural effect and cannot fault; the pointer is in
        // bounds of `data` anyway.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(data.as_ptr().add(i).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, i);
}

/// [`pack`] with the panel width `w` given at run time: one of the kernels' `MR` and `NR`
/// (a new kernel shape adds its widths here; the tests run every kernel).
pub fn pack_dyn(w: usize, x: Operand, r0: usize, rn: usize, p0: usize, kc: usize, dst: &mut [f32]) {
    match w {
        4 => pack::<4>(x, r0, rn, p0, kc, dst),
        6 => pack::<6>(x, r0, rn, p0, kc, dst),
        16 => pack::<16>(x, r0, rn, p0, kc, dst),
        64 => pack::<64>(x, r0, rn, p0, kc, dst),
        _ => unreachable!("no kernel has panel width {w}"),
    }
}

/// Pack `X[r0 .. r0 + rn][p0 .. p0 + kc]` into `rn.div_ceil(W)` panels of `W·kc` elements
/// each, in `dst` (which must hold exactly that many), rows past `rn` zero.
pub fn pack<const W: usize>(x: Operand, r0: usize, rn: usize, p0: usize, kc: usize, dst: &mut [f32]) {
    let panels = rn.div_ceil(W);
    debug_assert_eq!(dst.len(), panels * W * kc);
    if rn == 0 || kc == 0 {
        return;
    }
    if x.r_major {
        for (q, panel) in dst.chunks_exact_mut(W * kc).enumerate() {
            let rows = W.min(rn - q * W);
            pack_r_major::<W>(x, r0 + q * W, rows, p0, kc, panel);
        }
    } else {
        pack_k_major::<W>(x, r0, rn, p0, kc, dst);
    }
}

/// K-major source: row `p` of the block is `rn` contiguous elements; scatter each into the
/// panels, `W` at a time.
fn pack_k_major<const W: usize>(x: Operand, r0: usize, rn: usize, p0: usize, kc: usize, dst: &mut [f32]) {
    let full = rn / W;
    let tail = rn % W;
    for p in 0..kc {
        let base = (p0 + p) * x.ld + r0;
        // Fetch the row AHEAD steps on, a line at a time: rows are a large stride apart, so
        // the hardware prefetcher cannot follow from one to the next.
        if p + AHEAD < kc {
            let ahead = base + AHEAD * x.ld;
            for i in (0..rn).step_by(16) {
                prefetch(x.data, ahead + i);
            }
        }
        let src = &x.data[base..base + rn];
        for q in 0..full {
            dst[q * W * kc + p * W..][..W].copy_from_slice(&src[q * W..q * W + W]);
        }
        if tail > 0 {
            let d = &mut dst[full * W * kc + p * W..][..W];
            d[..tail].copy_from_slice(&src[full * W..]);
            d[tail..].fill(0.0);
        }
    }
}

/// R-major source: `rows ≤ W` source rows, each contiguous along `p`; transpose them into one
/// panel through a `W × 16` tile.
fn pack_r_major<const W: usize>(x: Operand, r0: usize, rows: usize, p0: usize, kc: usize, dst: &mut [f32]) {
    let mut tile = [[0.0f32; 16]; W];
    let mut p = 0;
    while p < kc {
        let len = 16.min(kc - p);
        for r in 0..rows {
            let start = (r0 + r) * x.ld + p0 + p;
            prefetch(x.data, start + AHEAD * 16);
            if len == 16 {
                // A fixed-size copy compiles to vector moves, not a call to memcpy.
                tile[r].copy_from_slice(&x.data[start..start + 16]);
            } else {
                tile[r][..len].copy_from_slice(&x.data[start..start + len]);
            }
        }
        let out = &mut dst[p * W..(p + len) * W];
        for (j, col) in out.chunks_exact_mut(W).enumerate() {
            for t in 0..W {
                col[t] = tile[t][j];
            }
        }
        p += len;
    }
}
