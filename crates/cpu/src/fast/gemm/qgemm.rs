//! The INT8 GEMM op with its dequantising epilogue fused (`omnifuse_core::op::QGemmSpec`):
//! the i32 tiles of the dot-product kernels ([`super::vnni`]) are dequantised
//! (`acc · a_scale[row] · epilogue.scale · b_scale[col]`), given bias, activation and
//! residual, and stored as f32 or requantised to i8 — one pass over each tile while it is in
//! L1. Without a dot-product kernel (no VNNI at the active SIMD level) the i8 GEMM of
//! [`super::int8`] computes i32 rows and the same epilogue follows row by row.

use omnifuse_core::op::Epilogue;

use super::vnni::{Level, Problem, Sink};
use crate::features::Isa;
use crate::kernels::{GemmArgs, QGemmArgs, QOut};
use crate::quant::requantize;

/// An output pointer shared by tasks that write disjoint tiles.
#[derive(Clone, Copy)]
struct Ptr<T>(*mut T);
// SAFETY: every task writes only its own tiles (disjoint rows × columns), and the buffer
// outlives the parallel section.
unsafe impl<T> Send for Ptr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Ptr<T> {}

/// `seg[j] = acc[j] · s · b_scale[j]`.
#[inline(always)]
fn dequant(acc: &[i32], s: f32, b_scale: &[f32], seg: &mut [f32]) {
    for ((o, &a), &bs) in seg.iter_mut().zip(acc).zip(b_scale) {
        *o = a as f32 * s * bs;
    }
}

/// [`dequant`] compiled for the active SIMD level.
fn dequant_simd(acc: &[i32], s: f32, b_scale: &[f32], seg: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
        fn avx512(acc: &[i32], s: f32, b_scale: &[f32], seg: &mut [f32]) {
            dequant(acc, s, b_scale, seg)
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2(acc: &[i32], s: f32, b_scale: &[f32], seg: &mut [f32]) {
            dequant(acc, s, b_scale, seg)
        }
        match Isa::active() {
            // SAFETY: `Isa::active` returns a level only when all its features were detected.
            Isa::Avx512 => return unsafe { avx512(acc, s, b_scale, seg) },
            // SAFETY: as above.
            Isa::Avx2 => return unsafe { avx2(acc, s, b_scale, seg) },
            Isa::Portable => {}
        }
    }
    dequant(acc, s, b_scale, seg)
}

/// The epilogue of one output row segment: global row `row`, columns `col0 ..`.
struct Epi<'a> {
    g: &'a QGemmArgs<'a>,
    /// The epilogue left after dequantisation (its scale folded into the row factor).
    rest: Epilogue,
}

impl Epi<'_> {
    /// Finish `acc` (the i32 sums of row `row`, columns `col0 ..`) into `seg` (f32).
    #[inline]
    fn finish(&self, row: usize, col0: usize, acc: &[i32], seg: &mut [f32]) {
        let g = self.g;
        let s = g.a.scale_of(row) * g.epilogue.scale;
        dequant_simd(acc, s, &g.b_scale[col0..col0 + acc.len()], seg);
        if !self.rest.is_identity() {
            let res = g.residual.map(|r| &r[row * g.n + col0..][..seg.len()]);
            super::apply_epilogue(&self.rest, g.bias, res, col0, seg);
        }
    }
}

/// Tiles to f32 output.
struct ToF32<'a> {
    epi: Epi<'a>,
    out: Ptr<f32>,
}

impl Sink for ToF32<'_> {
    fn tile(&self, batch: usize, row0: usize, col0: usize, rows: usize, cols: usize, tile: &[i32], stride: usize) {
        let g = self.epi.g;
        for r in 0..rows {
            let row = batch * g.m + row0 + r;
            // SAFETY: (row, col0 .. col0 + cols) lies inside the batch·m × n output, and only
            // this tile's task writes it.
            let seg = unsafe { std::slice::from_raw_parts_mut(self.out.0.add(row * g.n + col0), cols) };
            self.epi.finish(row, col0, &tile[r * stride..][..cols], seg);
        }
    }
}

/// Tiles requantised to i8.
struct ToI8<'a> {
    epi: Epi<'a>,
    out: Ptr<i8>,
    step: f32,
}

impl Sink for ToI8<'_> {
    fn tile(&self, batch: usize, row0: usize, col0: usize, rows: usize, cols: usize, tile: &[i32], stride: usize) {
        let g = self.epi.g;
        let mut tmp = [0.0f32; super::vnni::MAX_TILE];
        for r in 0..rows {
            let row = batch * g.m + row0 + r;
            let seg = &mut tmp[..cols];
            self.epi.finish(row, col0, &tile[r * stride..][..cols], seg);
            // SAFETY: as for f32 output: a disjoint row segment of the output.
            let dst = unsafe { std::slice::from_raw_parts_mut(self.out.0.add(row * g.n + col0), cols) };
            for (d, &v) in dst.iter_mut().zip(seg.iter()) {
                *d = requantize(v, self.step);
            }
        }
    }
}

/// Tiles stored as i32 (the bare i8 GEMM).
pub(super) struct ToI32 {
    pub(super) m: usize,
    pub(super) n: usize,
    pub(super) out: *mut i32,
}
// SAFETY: tiles are disjoint; the buffer outlives the product (see `Ptr`).
unsafe impl Sync for ToI32 {}

impl Sink for ToI32 {
    fn tile(&self, batch: usize, row0: usize, col0: usize, rows: usize, cols: usize, tile: &[i32], stride: usize) {
        for r in 0..rows {
            let row = batch * self.m + row0 + r;
            // SAFETY: a disjoint row segment of the batch·m × n output.
            let dst = unsafe { std::slice::from_raw_parts_mut(self.out.add(row * self.n + col0), cols) };
            dst.copy_from_slice(&tile[r * stride..][..cols]);
        }
    }
}

/// The name of the kernel [`qgemm`] uses here.
pub fn kernel_name() -> &'static str {
    Level::detect().map_or("i16-madd", Level::name)
}

/// INT8 GEMM with the fused dequantising epilogue.
pub fn qgemm(g: &QGemmArgs, out: QOut<'_>) {
    let rest = Epilogue { scale: 1.0, ..g.epilogue };
    let epi = Epi { g, rest };
    let rows = g.batch * g.m;
    if rows == 0 || g.n == 0 {
        return;
    }
    if let Some(level) = Level::detect() {
        let p = Problem {
            batch: 1,
            m: rows,
            n: g.n,
            k: g.k,
            a: g.a.data,
            trans_a: false,
            b: g.b,
            trans_b: true,
            b_shared: true,
            b_pack: g.b_pack,
        };
        match out {
            QOut::F32(o) => level.run(&p, &ToF32 { epi, out: Ptr(o.as_mut_ptr()) }),
            QOut::I8(o, step) => level.run(&p, &ToI8 { epi, out: Ptr(o.as_mut_ptr()), step }),
        }
        return;
    }
    // Fallback: i32 rows from the widening i8 GEMM, then the same epilogue.
    let mut acc = vec![0i32; rows * g.n];
    let args = GemmArgs {
        batch: 1,
        m: rows,
        n: g.n,
        k: g.k,
        a: g.a.data,
        trans_a: false,
        b: g.b,
        trans_b: true,
        b_shared: true,
        epilogue: Epilogue::default(),
        bias: None,
        residual: None,
        b_pack: None,
        b_wide: None,
    };
    super::int8::gemm_i8(&args, &mut acc);
    match out {
        QOut::F32(o) => {
            for (row, (a, seg)) in acc.chunks_exact(g.n).zip(o.chunks_exact_mut(g.n)).enumerate() {
                epi.finish(row, 0, a, seg);
            }
        }
        QOut::I8(o, step) => {
            let mut seg = vec![0.0f32; g.n];
            for (row, (a, dst)) in acc.chunks_exact(g.n).zip(o.chunks_exact_mut(g.n)).enumerate() {
                epi.finish(row, 0, a, &mut seg);
                for (d, &v) in dst.iter_mut().zip(&seg) {
                    *d = requantize(v, step);
                }
            }
        }
    }
}
