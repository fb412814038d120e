//! The fast f32 GEMM: BLIS-style blocking around a register-blocked micro-kernel chosen at run
//! time (AVX-512 12×32, AVX2+FMA 6×16, portable 4×16), multithreaded with rayon, with the
//! epilogue (scale, bias, activation, residual) applied to each C tile as it completes.
//!
//! Loops: jc over NC columns → pc over KC of the reduction → pack the B panel (KC × NC, once,
//! shared by all threads, packed in parallel) → tasks over (row block × column range) in
//! parallel, each packing its A block (MC × KC) → jr over NR → ir over MR → kernel. The B
//! micro-panel (KC × NR) is reused from L1 while the kernel walks the A block in L2. Row
//! blocks are sized so threads get equal shares; when there are fewer row blocks than
//! threads (skinny GEMMs, decode), the columns are split as well. Many small batched GEMMs run
//! one per thread instead.

mod avx2;
mod avx512;
mod int8;
mod kernel;
mod pack;
mod portable;

use std::cell::RefCell;

use rayon::prelude::*;

pub use int8::gemm_i8;
use kernel::MicroKernel;
use pack::{MatRef, pack_a_panel, pack_b_panel};

use crate::epilogue;
use crate::features::Isa;
use crate::kernels::GemmArgs;

/// Reduction block: the B micro-panel (KC × NR, 48 KiB) is the L1-resident operand.
const KC: usize = 384;
/// Row block in micro-panels: the A block (MC × KC) stays in L2.
const MC_PANELS: usize = 20;
/// Column block: the packed B panel (KC × NC) stays in L2/L3.
const NC: usize = 3072;
/// Below this many multiply-adds a GEMM runs on the calling thread.
const PARALLEL_MACS: usize = 1 << 18;

thread_local! {
    /// Per-thread packing buffers (A block; B panel when this thread leads a GEMM), kept
    /// between calls so repeated GEMMs do not page-fault fresh allocations.
    static PACK_A: RefCell<PackBuf> = const { RefCell::new(PackBuf(Vec::new())) };
    static PACK_B: RefCell<PackBuf> = const { RefCell::new(PackBuf(Vec::new())) };
}

/// The output pointer, shared by tasks that write disjoint rectangles.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks only write disjoint tiles of the output (distinct row blocks or column
// ranges, see `tasks`), and the buffer outlives the parallel section that uses the pointer.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

/// The micro-kernel `gemm_f32` uses on this CPU.
pub fn f32_kernel_name() -> &'static str {
    kernel_name(Isa::active())
}

/// The micro-kernel used at SIMD level `isa`.
pub fn kernel_name(isa: Isa) -> &'static str {
    match isa {
        Isa::Avx512 => "avx512 12x32",
        Isa::Avx2 => avx2::Avx2::NAME,
        Isa::Portable => portable::Portable::NAME,
    }
}

/// f32 GEMM with fused epilogue; see [`GemmArgs`] for the layout contract.
pub fn gemm_f32(g: &GemmArgs<f32>, out: &mut [f32]) {
    gemm_f32_on(Isa::active(), g, out)
}

/// f32 GEMM with the micro-kernel of SIMD level `isa`, which must be one of
/// [`Isa::available`] (a higher one falls back to the active level).
pub fn gemm_f32_on(isa: Isa, g: &GemmArgs<f32>, out: &mut [f32]) {
    let isa = if Isa::available().contains(&isa) { isa } else { Isa::active() };
    if out.is_empty() {
        return;
    }
    if g.k == 0 {
        out.fill(0.0);
        for (row, chunk) in out.chunks_exact_mut(g.n).enumerate() {
            finish_row(g, row, 0, chunk);
        }
        return;
    }
    match isa {
        Isa::Avx512 => run::<avx512::Avx512<12, 2>>(g, out),
        Isa::Avx2 => run::<avx2::Avx2>(g, out),
        Isa::Portable => run::<portable::Portable>(g, out),
    }
}

/// Apply the epilogue to the outputs `seg` of global row `row`, starting at column `j0`.
fn finish_row(g: &GemmArgs<f32>, row: usize, j0: usize, seg: &mut [f32]) {
    if g.epilogue.is_identity() {
        return;
    }
    let residual = g.residual.map(|r| &r[row * g.n + j0..row * g.n + j0 + seg.len()]);
    epilogue::apply(&g.epilogue, g.bias, residual, j0, seg);
}

fn run<K: MicroKernel>(g: &GemmArgs<f32>, out: &mut [f32]) {
    let ptr = OutPtr(out.as_mut_ptr());
    let threads = rayon::current_num_threads().max(1);
    let per_batch = g.m * g.n * g.k;
    if threads > 1 && g.batch >= threads && per_batch < PARALLEL_MACS {
        // Many small products: one whole GEMM per task.
        (0..g.batch).into_par_iter().for_each(|b| gemm_one::<K>(g, b, ptr, 1));
    } else {
        let parts = if per_batch * g.batch < PARALLEL_MACS { 1 } else { threads };
        for b in 0..g.batch {
            gemm_one::<K>(g, b, ptr, parts);
        }
    }
}

/// Row blocks of at most `mc_max` rows, in whole panels, a multiple of `parts` in number when
/// there are enough panels, and equal to within one panel (threads finish together).
fn row_blocks(m: usize, mr: usize, mc_max: usize, parts: usize) -> Vec<(usize, usize)> {
    let panels = m.div_ceil(mr);
    let step = parts.min(panels).max(1);
    let mut count = step;
    while panels.div_ceil(count) * mr > mc_max {
        count += step;
    }
    let (base, extra) = (panels / count, panels % count);
    let mut out = Vec::with_capacity(count);
    let mut p = 0;
    for i in 0..count {
        let take = base + usize::from(i < extra);
        if take == 0 {
            continue;
        }
        out.push((p * mr, ((p + take) * mr).min(m) - p * mr));
        p += take;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::row_blocks;

    #[test]
    fn row_blocks_cover_every_row_once_and_balance() {
        for (m, parts) in [(1, 2), (12, 2), (1024, 2), (1000, 3), (97, 4), (5000, 2)] {
            let blocks = row_blocks(m, 12, 240, parts);
            let mut next = 0;
            for &(start, len) in &blocks {
                assert_eq!(start, next);
                assert!(len > 0 && len <= 240);
                next += len;
            }
            assert_eq!(next, m);
            let sizes: Vec<usize> = blocks.iter().map(|b| b.1.div_ceil(12)).collect();
            let (lo, hi) = (sizes.iter().min().copied().unwrap_or(0), sizes.iter().max().copied().unwrap_or(0));
            assert!(hi - lo <= 1, "{m} rows, {parts} parts: {blocks:?}");
        }
    }
}

/// A unit of parallel work inside one (jc, pc) step: a row block and a range of NR panels.
#[derive(Clone, Copy, Debug)]
struct Task {
    rows: (usize, usize),
    panels: (usize, usize),
}

fn tasks(m: usize, nc: usize, mr: usize, nr: usize, parts: usize) -> Vec<Task> {
    let rows = row_blocks(m, mr, MC_PANELS * mr, parts);
    let col_panels = nc.div_ceil(nr);
    let splits = if rows.len() >= parts { 1 } else { parts.div_ceil(rows.len()).min(col_panels).max(1) };
    let per = col_panels.div_ceil(splits);
    let mut out = Vec::with_capacity(rows.len() * splits);
    for &r in &rows {
        for s in (0..col_panels).step_by(per) {
            out.push(Task { rows: r, panels: (s, (s + per).min(col_panels)) });
        }
    }
    out
}

/// Run `f` with this thread's buffer in `cell`, or a fresh one when the buffer is already in
/// use further up this thread's stack (a GEMM started from a task that work-stealing ran
/// while an outer GEMM waited).
fn with_buffer<R>(cell: &'static std::thread::LocalKey<RefCell<PackBuf>>, f: impl FnOnce(&mut PackBuf) -> R) -> R {
    cell.with(|c| match c.try_borrow_mut() {
        Ok(mut v) => f(&mut v),
        Err(_) => f(&mut PackBuf(Vec::new())),
    })
}

/// Sixteen floats on a 64-byte boundary.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A packing buffer aligned to cache lines. Panels start at multiples of 16 floats, so every
/// vector load of a packed B row stays inside one cache line (a plain `Vec<f32>` from the
/// allocator is only 16-byte aligned, and split loads cost AVX-512 a third of its speed).
struct PackBuf(Vec<Line>);

impl PackBuf {
    /// The first `n` floats, growing (zero-filled) as needed.
    fn take(&mut self, n: usize) -> &mut [f32] {
        let lines = n.div_ceil(16);
        if self.0.len() < lines {
            self.0.resize(lines, Line([0.0; 16]));
        }
        &mut bytemuck::cast_slice_mut(&mut self.0)[..n]
    }
}

/// One batch's product with `parts`-way parallelism.
fn gemm_one<K: MicroKernel>(g: &GemmArgs<f32>, batch: usize, out: OutPtr, parts: usize) {
    let (mr, nr) = (K::MR, K::NR);
    let a = MatRef { data: &g.a[g.a_offset(batch)..][..g.m * g.k], rows: g.m, cols: g.k, trans: g.trans_a };
    let b = MatRef { data: &g.b[g.b_offset(batch)..][..g.k * g.n], rows: g.k, cols: g.n, trans: g.trans_b };
    with_buffer(&PACK_B, |bpack| {
        let mut jc = 0;
        while jc < g.n {
            let nc = NC.min(g.n - jc);
            let list = tasks(g.m, nc, mr, nr, parts);
            let mut pc = 0;
            while pc < g.k {
                let kc = KC.min(g.k - pc);
                let panels = bpack.take(nc.div_ceil(nr) * nr * kc);
                let pack_one = |(i, dst): (usize, &mut [f32])| {
                    let c0 = jc + i * nr;
                    pack_b_panel(b, pc, kc, c0, nr.min(jc + nc - c0), nr, dst);
                };
                if parts > 1 {
                    panels.par_chunks_mut(nr * kc).enumerate().for_each(pack_one);
                } else {
                    panels.chunks_mut(nr * kc).enumerate().for_each(pack_one);
                }
                let packed: &[f32] = panels;
                let step = Step { g, batch, a, bpack: packed, jc, pc, kc, out };
                if list.len() > 1 {
                    list.par_iter().for_each(|t| step.task::<K>(t));
                } else {
                    list.iter().for_each(|t| step.task::<K>(t));
                }
                pc += kc;
            }
            jc += nc;
        }
    });
}

/// What every task of one (jc, pc) step shares.
struct Step<'a> {
    g: &'a GemmArgs<'a, f32>,
    batch: usize,
    a: MatRef<'a>,
    bpack: &'a [f32],
    jc: usize,
    pc: usize,
    kc: usize,
    out: OutPtr,
}

impl Step<'_> {
    fn task<K: MicroKernel>(&self, t: &Task) {
        let (mr, nr, kc, g) = (K::MR, K::NR, self.kc, self.g);
        let (ic, mc) = t.rows;
        let last = self.pc + kc == g.k;
        let c_base = self.batch * g.m * g.n;
        let mut scratch = [0.0f32; 64 * 64];
        with_buffer(&PACK_A, |buf| {
            let apack = buf.take(mc.div_ceil(mr) * mr * kc);
            for (i, dst) in apack.chunks_mut(mr * kc).take(mc.div_ceil(mr)).enumerate() {
                let r0 = ic + i * mr;
                pack_a_panel(self.a, r0, mr.min(ic + mc - r0), self.pc, kc, mr, dst);
            }
            for jp in t.panels.0..t.panels.1 {
                let col0 = self.jc + jp * nr;
                let ncols = nr.min(g.n - col0);
                let bp = self.bpack[jp * nr * kc..].as_ptr();
                for ir in (0..mc).step_by(mr) {
                    let nrows = mr.min(mc - ir);
                    let ap = apack[ir / mr * mr * kc..].as_ptr();
                    let row0 = ic + ir;
                    // SAFETY: (row0, col0) is inside the m × n output of this batch, so the
                    // offset is inside `out`; this task alone writes this tile.
                    let c = unsafe { self.out.0.add(c_base + row0 * g.n + col0) };
                    if nrows == mr && ncols == nr {
                        // SAFETY: packed panels hold mr·kc and kc·nr floats; the full tile
                        // (mr rows × nr columns at stride n) lies inside the output.
                        unsafe { K::run(kc, ap, bp, c, g.n, self.pc > 0) };
                    } else {
                        // Edge tile: compute the padded tile in scratch, copy what exists.
                        // SAFETY: scratch holds mr·nr ≤ 64·64 floats at stride nr.
                        unsafe { K::run(kc, ap, bp, scratch.as_mut_ptr(), nr, false) };
                        for r in 0..nrows {
                            // SAFETY: row r of the edge tile: ncols floats inside the output.
                            let dst = unsafe { std::slice::from_raw_parts_mut(c.add(r * g.n), ncols) };
                            let src = &scratch[r * nr..r * nr + ncols];
                            if self.pc > 0 {
                                dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                            } else {
                                dst.copy_from_slice(src);
                            }
                        }
                    }
                    if last {
                        for r in 0..nrows {
                            // SAFETY: the same tile row as above, written only by this task.
                            let seg = unsafe { std::slice::from_raw_parts_mut(c.add(r * g.n), ncols) };
                            finish_row(g, self.batch * g.m + row0 + r, col0, seg);
                        }
                    }
                }
            }
        });
    }
}
