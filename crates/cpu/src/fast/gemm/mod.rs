//! The fast f32 GEMM: BLIS-style cache blocking around a register-blocked micro-kernel chosen
//! at run time (AVX-512 6×64, AVX2+FMA 6×16, portable 4×16), multithreaded with rayon, with
//! the epilogue (scale, bias, activation, residual) applied to each C tile as it completes;
//! skinny products (at most 8 rows) take an unpacked GEMV-style path (`gemv`); plus the i8
//! GEMM ([`gemm_i8`]).
//!
//! Loops: jc over NC columns → pc over KC of the reduction → pack the B panel (KC × NC, once,
//! shared by all threads, packed in parallel) → tasks over (row block × column range) in
//! parallel, each packing its A block (MC × KC, L2) → jr over NR → ir over MR → kernel. Each
//! B micro-panel (KC × NR) is reused across the whole A block: from L1 where it fits (AVX2),
//! streamed from L2 with software prefetch where it does not (the 64-wide AVX-512 panel).
//! The first KC block stores into C, later ones add, and the last applies the epilogue to
//! each tile while it is still in L1, so each output is finished in place. Row blocks are
//! sized so threads get equal shares; when there are fewer row blocks than threads (skinny
//! GEMMs), the columns are split as well. Many small batched GEMMs run one per thread.
//!
//! Tuned on a Sapphire-Rapids-class core (48 KiB L1d, 2 MiB L2): KC = 512, MC = 240, NC = 3072
//! for AVX-512 (A block 480 KiB in L2, A micro-panel 12 KiB in L1).

mod avx2;
mod avx512;
mod gemv;
mod int8;
mod kernel;
mod pack;
mod portable;
mod qgemm;
pub mod vnni;
mod vnni_small;

use std::cell::RefCell;

use omnifuse_core::op::Epilogue;
use rayon::prelude::*;

use kernel::MicroKernel;
use pack::{Operand, pack_dyn};
pub use qgemm::{kernel_name as int8_kernel_name, qgemm};

use crate::epilogue;
use crate::features::Isa;
use crate::kernels::GemmArgs;
use crate::prepack::{PackKey, PackSlot, Packed};

/// Below this many multiply-adds a GEMM runs on the calling thread.
const PARALLEL_MACS: usize = 1 << 18;

/// The largest `MR·NR` of any kernel (the edge-tile scratch size).
const MAX_TILE: usize = 1024;

thread_local! {
    /// Per-thread packing buffers (A block; B panel when this thread leads a GEMM), kept
    /// between calls so repeated GEMMs do not page-fault fresh allocations.
    static PACK_A: RefCell<PackBuf> = const { RefCell::new(PackBuf(Vec::new())) };
    static PACK_B: RefCell<PackBuf> = const { RefCell::new(PackBuf(Vec::new())) };
}

/// The micro-kernel of each SIMD level.
type Avx512Kernel = avx512::Avx512<6, 4>;
type Avx2Kernel = avx2::Avx2;
type PortableKernel = portable::Portable;

/// Which micro-kernel `gemm_f32` uses on this machine: `avx512`, `avx2+fma` or `portable`.
pub fn f32_kernel_name() -> &'static str {
    match Isa::active() {
        Isa::Avx512 => Avx512Kernel::NAME,
        Isa::Avx2 => Avx2Kernel::NAME,
        Isa::Portable => PortableKernel::NAME,
    }
}

/// i8 × i8 → i32 GEMM (wrapping); see [`GemmArgs`] for the layout contract. Runs on the
/// byte dot-product kernels where the CPU has them, else on the widening multiply-add one.
pub fn gemm_i8(g: &GemmArgs<i8>, out: &mut [i32]) {
    match vnni::Level::detect() {
        Some(level) => {
            let p = vnni::Problem {
                batch: g.batch,
                m: g.m,
                n: g.n,
                k: g.k,
                a: g.a,
                trans_a: g.trans_a,
                b: g.b,
                trans_b: g.trans_b,
                b_shared: g.b_shared,
                b_pack: None,
            };
            level.run(&p, &qgemm::ToI32 { m: g.m, n: g.n, out: out.as_mut_ptr() });
        }
        None => int8::gemm_i8(g, out),
    }
}

/// f32 GEMM with fused epilogue; see [`GemmArgs`] for the layout contract.
pub fn gemm_f32(g: &GemmArgs<f32>, out: &mut [f32]) {
    gemm_f32_on(Isa::active(), g, out)
}

/// f32 GEMM with the micro-kernel of SIMD level `isa` (used to test every kernel on one
/// machine); a level this CPU cannot run falls back to the active one.
pub fn gemm_f32_on(isa: Isa, g: &GemmArgs<f32>, out: &mut [f32]) {
    let isa = if Isa::available().contains(&isa) { isa } else { Isa::active() };
    if out.is_empty() {
        return;
    }
    if g.k == 0 {
        out.fill(0.0);
        for (row, seg) in out.chunks_exact_mut(g.n).enumerate() {
            finish(g, row, 0, seg);
        }
        return;
    }
    // A constant B (a weight) is packed once and kept with its buffer; one B per batch is
    // packed per call as before.
    let prepacked = g.b_pack.filter(|_| g.b_shared || g.batch == 1);
    if prepacked.is_none()
        && let Some(w) = g.b_wide
    {
        // A deferred narrow weight that cannot be kept: widen it now, once for this call.
        let wide = (w.0)();
        return gemm_f32_on(isa, &GemmArgs { b: &wide, b_wide: None, ..*g }, out);
    }
    if g.m <= gemv::MAX_ROWS && prepacked.is_none() {
        let job = |(b, c): (usize, &mut [f32])| gemv::gemv_batch(isa, g, b, c, |row, j0, seg| finish(g, row, j0, seg));
        let small = g.m * g.n * g.k < PARALLEL_MACS;
        if g.batch > 1 && small && rayon::current_num_threads() > 1 {
            out.par_chunks_mut(g.m * g.n).enumerate().for_each(job);
        } else {
            out.chunks_mut(g.m * g.n).enumerate().for_each(job);
        }
        return;
    }
    match isa {
        Isa::Avx512 => run::<Avx512Kernel>(g, out, prepacked),
        Isa::Avx2 => run::<Avx2Kernel>(g, out, prepacked),
        Isa::Portable => run::<PortableKernel>(g, out, prepacked),
    }
}

/// All of a B operand packed for kernel `K`: for each `KC` block of the reduction (in
/// order), every `NR`-column panel of that block (`kc × NR`, zero-padded past `n`). Block
/// `pc` starts at `pc · n_pad`, and column `jc` (a multiple of `NR`) of it at `jc · kc`.
struct PackedF32 {
    buf: PackBuf,
    len: usize,
    n_pad: usize,
}

impl PackedF32 {
    /// The panels of columns `jc ..` in the reduction block starting at `pc` (`kc` long).
    fn panels(&self, pc: usize, kc: usize, jc: usize) -> &[f32] {
        &bytemuck::cast_slice(&self.buf.0)[..self.len][pc * self.n_pad + jc * kc..]
    }
}

/// Pack all of batch 0's B for kernel `K` (see [`PackedF32`]), in parallel when large.
fn prepack<K: MicroKernel>(g: &GemmArgs<f32>) -> Packed {
    let (nr, kc_max) = (K::NR, K::KC);
    let (_, xb) = operands(g, 0);
    let col_panels = g.n.div_ceil(nr);
    let n_pad = col_panels * nr;
    let len = n_pad * g.k;
    let mut buf = PackBuf(Vec::new());
    let all = buf.take(len);
    let parallel = g.n * g.k >= PARALLEL_MACS && rayon::current_num_threads() > 1;
    let mut rest = &mut all[..];
    let mut pc = 0;
    while pc < g.k {
        let kc = kc_max.min(g.k - pc);
        let (block, tail) = rest.split_at_mut(n_pad * kc);
        let pack = |(jp, dst): (usize, &mut [f32])| pack_dyn(nr, xb, jp * nr, nr.min(g.n - jp * nr), pc, kc, dst);
        if parallel {
            block.par_chunks_mut(nr * kc).enumerate().for_each(pack);
        } else {
            block.chunks_mut(nr * kc).enumerate().for_each(pack);
        }
        rest = tail;
        pc += kc;
    }
    Packed::new(PackedF32 { buf, len, n_pad }, len * 4)
}

/// Apply the epilogue to `seg`, the outputs of global row `row` (batch-major) from column `j0`.
fn finish(g: &GemmArgs<f32>, row: usize, j0: usize, seg: &mut [f32]) {
    if g.epilogue.is_identity() {
        return;
    }
    let residual = g.residual.map(|r| &r[row * g.n + j0..row * g.n + j0 + seg.len()]);
    apply_epilogue(&g.epilogue, g.bias, residual, j0, seg);
}

/// [`epilogue::apply`] compiled for the active SIMD level: GELU's erfc and exp are most of an
/// epilogue's cost, and baseline x86-64 code runs them four lanes at a time. The body is
/// inlined into each target-feature function directly (through a closure it stayed a
/// separate baseline function).
fn apply_epilogue(ep: &Epilogue, bias: Option<&[f32]>, residual: Option<&[f32]>, col0: usize, seg: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
        fn avx512(ep: &Epilogue, bias: Option<&[f32]>, residual: Option<&[f32]>, col0: usize, seg: &mut [f32]) {
            epilogue::apply(ep, bias, residual, col0, seg)
        }
        #[target_feature(enable = "avx2,fma,f16c")]
        fn avx2(ep: &Epilogue, bias: Option<&[f32]>, residual: Option<&[f32]>, col0: usize, seg: &mut [f32]) {
            epilogue::apply(ep, bias, residual, col0, seg)
        }
        match Isa::active() {
            // SAFETY: `Isa::active` returns a level only when all its features were detected.
            Isa::Avx512 => return unsafe { avx512(ep, bias, residual, col0, seg) },
            // SAFETY: as above.
            Isa::Avx2 => return unsafe { avx2(ep, bias, residual, col0, seg) },
            Isa::Portable => {}
        }
    }
    epilogue::apply(ep, bias, residual, col0, seg)
}

/// The output pointer, shared by tasks that write disjoint tiles.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks only write disjoint tiles of the output (distinct row blocks or column
// ranges, see `tasks`), and the buffer outlives the parallel section that uses the pointer.
unsafe impl Send for OutPtr {}
// SAFETY: as above: concurrent tasks write only disjoint tiles through copies of it.
unsafe impl Sync for OutPtr {}

fn run<K: MicroKernel>(g: &GemmArgs<f32>, out: &mut [f32], prepacked: Option<&PackSlot>) {
    let ptr = OutPtr(out.as_mut_ptr());
    let threads = rayon::current_num_threads().max(1);
    let per_batch = g.m * g.n * g.k;
    let packed = prepacked.map(|slot| {
        let key = PackKey { scheme: K::NAME, n: g.n, k: g.k, trans_b: g.trans_b };
        slot.get_or_build(key, || match g.b_wide {
            // A narrow weight is widened here, only for its panels, and not kept.
            Some(w) => prepack::<K>(&GemmArgs { b: &(w.0)(), b_wide: None, ..*g }),
            None => prepack::<K>(g),
        })
    });
    let packed = packed.as_deref().and_then(Packed::get::<PackedF32>);
    if threads > 1 && g.batch > 1 && per_batch < PARALLEL_MACS {
        // Many small products: one whole GEMM per task.
        (0..g.batch).into_par_iter().for_each(|b| gemm_one::<K>(g, b, ptr, 1, packed));
    } else {
        let parts = if per_batch < PARALLEL_MACS { 1 } else { threads };
        for b in 0..g.batch {
            gemm_one::<K>(g, b, ptr, parts, packed);
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

/// A unit of parallel work inside one (jc, pc) step: a row block and a range of NR panels.
#[derive(Clone, Copy, Debug)]
struct Task {
    rows: (usize, usize),
    panels: (usize, usize),
}

/// Rows up to which a product keeps all its rows in one block and splits only the columns
/// between threads: every thread then reads only its share of B, which such products are
/// bound by.
const SKINNY_ROWS: usize = 32;

fn tasks(m: usize, nc: usize, mr: usize, nr: usize, mc: usize, parts: usize) -> Vec<Task> {
    let rows = if m <= SKINNY_ROWS { vec![(0, m)] } else { row_blocks(m, mr, mc, parts) };
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
/// vector load of a packed row stays inside one cache line (a plain `Vec<f32>` is only
/// 16-byte aligned, and split loads cost AVX-512 a third of its speed).
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

/// The operand views of batch `batch`: `Xa = A` (rows M) and `Xb = Bᵀ` (rows N), see
/// [`pack`].
fn operands<'a>(g: &GemmArgs<'a, f32>, batch: usize) -> (Operand<'a>, Operand<'a>) {
    let a = &g.a[g.a_offset(batch)..][..g.m * g.k];
    // A deferred B (`b_wide`) is empty here: its panels are kept, so it is never packed.
    let b = g.b.get(g.b_offset(batch)..).and_then(|b| b.get(..g.k * g.n)).unwrap_or_default();
    let xa = Operand { data: a, ld: if g.trans_a { g.m } else { g.k }, r_major: !g.trans_a };
    let xb = Operand { data: b, ld: if g.trans_b { g.k } else { g.n }, r_major: g.trans_b };
    (xa, xb)
}

/// One batch's product with `parts`-way parallelism, B packed per step or taken from
/// `packed`.
fn gemm_one<K: MicroKernel>(g: &GemmArgs<f32>, batch: usize, out: OutPtr, parts: usize, packed: Option<&PackedF32>) {
    let (mr, nr) = (K::MR, K::NR);
    let (kc_max, mc_max, nc_max) = (K::KC, K::MC, K::NC);
    let (xa, xb) = operands(g, batch);
    with_buffer(&PACK_B, |bpack| {
        let mut jc = 0;
        while jc < g.n {
            let nc = nc_max.min(g.n - jc);
            let list = tasks(g.m, nc, mr, nr, mc_max, parts);
            let mut pc = 0;
            while pc < g.k {
                let kc = kc_max.min(g.k - pc);
                let col_panels = nc.div_ceil(nr);
                let panels: &[f32] = if let Some(p) = packed {
                    &p.panels(pc, kc, jc)[..col_panels * nr * kc]
                } else {
                    let panels = bpack.take(col_panels * nr * kc);
                    pack_step(nr, xb, jc, nc, pc, kc, parts, panels);
                    panels
                };
                let step = Step { g, batch, xa, bpack: panels, jc, pc, kc, out };
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

/// Pack B's columns `jc .. jc + nc`, reduction steps `pc .. pc + kc`, into `panels`, in
/// parallel when the product is.
#[allow(clippy::too_many_arguments)]
fn pack_step(nr: usize, xb: Operand, jc: usize, nc: usize, pc: usize, kc: usize, parts: usize, panels: &mut [f32]) {
    let col_panels = nc.div_ceil(nr);
    if parts > 1 {
        // Each thread packs a contiguous range of panels.
        let per = col_panels.div_ceil(parts * 2).max(1);
        panels.par_chunks_mut(per * nr * kc).enumerate().for_each(|(i, dst)| {
            let c0 = i * per * nr;
            pack_dyn(nr, xb, jc + c0, (per * nr).min(nc - c0), pc, kc, dst)
        });
    } else {
        pack_dyn(nr, xb, jc, nc, pc, kc, panels);
    }
}

/// What every task of one (jc, pc) step shares.
struct Step<'a> {
    g: &'a GemmArgs<'a, f32>,
    batch: usize,
    xa: Operand<'a>,
    bpack: &'a [f32],
    jc: usize,
    pc: usize,
    kc: usize,
    out: OutPtr,
}

/// Scratch for one edge tile, aligned like the packed panels.
#[repr(C, align(64))]
struct Tile([f32; MAX_TILE]);

impl Step<'_> {
    fn task<K: MicroKernel>(&self, t: &Task) {
        let (mr, nr, kc, g) = (K::MR, K::NR, self.kc, self.g);
        const { assert!(K::MR * K::NR <= MAX_TILE) };
        let (ic, mc) = t.rows;
        let accumulate = self.pc > 0;
        let last = self.pc + kc == g.k;
        let c_base = self.batch * g.m * g.n;
        let mut scratch = Tile([0.0; MAX_TILE]);
        with_buffer(&PACK_A, |buf| {
            let apack = buf.take(mc.div_ceil(mr) * mr * kc);
            pack_dyn(mr, self.xa, ic, mc, self.pc, kc, apack);
            // jr over the task's B micro-panels, ir over the A block: each B micro-panel is
            // reused for the whole A block while it is in L1/L2.
            for jp in t.panels.0..t.panels.1 {
                let col0 = self.jc + jp * nr;
                let ncols = nr.min(g.n - col0);
                let bp = self.bpack[jp * nr * kc..][..nr * kc].as_ptr();
                for (ip, ap) in apack.chunks_exact(mr * kc).enumerate() {
                    let row0 = ic + ip * mr;
                    let nrows = mr.min(ic + mc - row0);
                    // SAFETY: (row0, col0) is inside the m × n output of this batch, so the
                    // offset is inside `out`; this task alone writes this tile.
                    let c = unsafe { self.out.0.add(c_base + row0 * g.n + col0) };
                    if ncols == nr && (nrows == mr || K::ROW_EXACT) {
                        // SAFETY: the packed panels hold mr·kc and kc·nr floats; the tile
                        // (nrows rows × nr columns at stride n; all mr rows unless the
                        // kernel is row-exact) lies inside the output; the kernel's ISA was
                        // detected before `run` was chosen.
                        unsafe { K::run_rows(nrows, kc, ap.as_ptr(), bp, c, g.n, accumulate) };
                    } else {
                        // Edge tile: compute the padded tile in scratch, copy what exists.
                        // SAFETY: scratch holds MAX_TILE ≥ mr·nr floats at stride nr.
                        unsafe { K::run_rows(nrows, kc, ap.as_ptr(), bp, scratch.0.as_mut_ptr(), nr, false) };
                        for r in 0..nrows {
                            // SAFETY: row r of the edge tile: ncols floats inside the output,
                            // written only by this task; no other reference to them exists.
                            let dst = unsafe { std::slice::from_raw_parts_mut(c.add(r * g.n), ncols) };
                            let src = &scratch.0[r * nr..r * nr + ncols];
                            if accumulate {
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
                            finish(g, self.batch * g.m + row0 + r, col0, seg);
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{gemm_f32_on, row_blocks};
    use crate::features::Isa;
    use crate::kernels::GemmArgs;
    use crate::prepack::{Budget, PackSlot};
    use omnifuse_core::op::{Activation, Epilogue};

    /// Every SIMD level this CPU has, B packed once (kept in a slot) against B packed per
    /// call: bit for bit where both take the packed kernel (more than 8 rows), and against
    /// the reference otherwise; then a second call hits and agrees again.
    #[test]
    fn prepacked_b_matches_per_call_packing_at_every_level() {
        let shapes =
            [(1, 64, 16), (3, 77, 513), (8, 130, 300), (9, 64, 64), (17, 200, 1100), (32, 3100, 40), (50, 70, 90)];
        for isa in Isa::available() {
            for &(m, n, k) in &shapes {
                for trans_b in [true, false] {
                    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0).collect();
                    let b: Vec<f32> = (0..n * k).map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0).collect();
                    let bias: Vec<f32> = (0..n).map(|j| j as f32 / 100.0).collect();
                    let g = GemmArgs {
                        batch: 1,
                        m,
                        n,
                        k,
                        a: &a,
                        trans_a: false,
                        b: &b,
                        trans_b,
                        b_shared: true,
                        epilogue: Epilogue { bias: true, activation: Activation::Relu, ..Epilogue::default() },
                        bias: Some(&bias),
                        residual: None,
                        b_pack: None,
                        b_wide: None,
                    };
                    let mut want = vec![0.0f32; m * n];
                    crate::Kernels::gemm_f32(&crate::reference::Reference, &g, &mut want);
                    let mut per_call = vec![0.0f32; m * n];
                    gemm_f32_on(isa, &g, &mut per_call);
                    let slot = PackSlot::new(Budget::new(1 << 30));
                    slot.mark_constant();
                    let kept = GemmArgs { b_pack: Some(&slot), ..g };
                    let (mut first, mut second) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
                    gemm_f32_on(isa, &kept, &mut first);
                    gemm_f32_on(isa, &kept, &mut second);
                    let what = format!("{isa:?} {m}×{n}×{k} trans_b={trans_b}");
                    assert_eq!(first, second, "{what}");
                    if m > super::gemv::MAX_ROWS {
                        assert_eq!(first, per_call, "{what}");
                    }
                    let err = first.iter().zip(&want).fold(0.0f32, |e, (x, y)| e.max((x - y).abs()));
                    assert!(err < 1e-3, "{what}: max error {err}");
                }
            }
        }
    }

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
