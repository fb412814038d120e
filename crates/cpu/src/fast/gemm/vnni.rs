//! INT8 GEMM on the byte dot-product instructions (`vpdpbusd`: four u8 × i8 products summed
//! into each i32 lane): AVX-512 VNNI (zmm, tile 6 × 64) and AVX-VNNI (ymm, tile 6 × 16).
//!
//! Algorithm: `vpdpbusd` wants one unsigned operand, so A is stored offset by 128
//! (`a + 128`, a byte XOR with 0x80) and the offset is taken back out exactly per column:
//! `Σ (a+128)·b = Σ a·b + 128·Σ_k b[k][j]`, all in wrapping i32, so the result equals the
//! reference's wrapping sum bit for bit. K is padded to a multiple of 4 (A with 128 ≡ 0,
//! B with 0). Packed layouts, per group `g` of 4 k-steps: B panel `[g][NR][4]` (one zmm per
//! 16 columns), A panel `[g][MR][4]` (one broadcast dword per row). Each group issues
//! `MR·NR/16` (zmm) dot products from `NR/16` loads and `MR` broadcasts: for 6 × 64, 24
//! `vpdpbusd` per 4 + 6 loads, with 24 accumulators + 4 B + 1 broadcast registers of 32.
//! Blocking: B is packed once (per batch when not shared) and shared by all threads; a
//! constant B (a weight) is packed on its first use and kept with its buffer; threads
//! take row blocks of `MC` rows (A block packed per task, kept in L2) and, when rows are few,
//! ranges of column panels too; each B micro-panel (`NR × K` bytes) is reused across the
//! row block from L2. Every finished `MR × NR` tile (i32, offset removed) goes to a sink that
//! stores or dequantises it while it is in L1.
//! Limits: needs AVX-512F/BW + AVX-512 VNNI, or AVX2 + AVX-VNNI (the caller checks).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::cell::RefCell;

use rayon::prelude::*;

use crate::prepack::{PackKey, PackSlot, Packed};

/// Below this many multiply-adds a GEMM runs on the calling thread.
const PARALLEL_MACS: usize = 1 << 18;
/// Row panels per row block.
const PANELS_PER_BLOCK: usize = 16;
/// Largest tile of any kernel.
pub const MAX_TILE: usize = 6 * 64;

/// A dot-product micro-kernel.
pub trait QKernel: Sync {
    /// Tile rows.
    const MR: usize;
    /// Tile columns.
    const NR: usize;
    /// Name for reports.
    const NAME: &'static str;
    /// `tile[MR × NR] (stride NR) = A_panel · B_panel` over `groups` groups of 4 k-steps.
    ///
    /// # Safety
    /// `a` must be valid for `groups·MR·4` reads, `b` for `groups·NR·4`, `tile` for `MR·NR`
    /// writes; the CPU must have the kernel's instruction set.
    unsafe fn run(groups: usize, a: *const u8, b: *const i8, tile: *mut i32);
}

/// AVX-512 VNNI, 6 × 64.
pub struct Zmm;
/// AVX-VNNI (VEX-encoded, 256-bit), 6 × 16.
pub struct Ymm;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn zmm_kernel(groups: usize, a: *const u8, b: *const i8, tile: *mut i32) {
    const MR: usize = 6;
    const NV: usize = 4;
    let mut acc = [[_mm512_setzero_si512(); NV]; MR];
    let (mut a, mut b) = (a, b);
    for _ in 0..groups {
        _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(8 * 256));
        _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(8 * 256 + 64));
        _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(8 * 256 + 128));
        _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(8 * 256 + 192));
        // SAFETY: the caller guarantees `groups` groups of 256 B bytes and 24 A bytes; each
        // iteration reads one group of each and advances by exactly that.
        unsafe {
            let mut bv = [_mm512_setzero_si512(); NV];
            for v in 0..NV {
                bv[v] = _mm512_loadu_si512(b.add(64 * v).cast());
            }
            for i in 0..MR {
                let ai = _mm512_set1_epi32(a.add(4 * i).cast::<i32>().read_unaligned());
                for v in 0..NV {
                    acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], ai, bv[v]);
                }
            }
            a = a.add(4 * MR);
            b = b.add(64 * NV);
        }
    }
    for i in 0..MR {
        for v in 0..NV {
            // SAFETY: the caller guarantees MR·64 writable i32 behind `tile`.
            unsafe { _mm512_storeu_si512(tile.add(i * 64 + 16 * v).cast(), acc[i][v]) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn ymm_kernel(groups: usize, a: *const u8, b: *const i8, tile: *mut i32) {
    const MR: usize = 6;
    const NV: usize = 2;
    let mut acc = [[_mm256_setzero_si256(); NV]; MR];
    let (mut a, mut b) = (a, b);
    for _ in 0..groups {
        // SAFETY: as in the zmm kernel: one group of 64 B bytes and 24 A bytes per step.
        unsafe {
            let bv = [_mm256_loadu_si256(b.cast()), _mm256_loadu_si256(b.add(32).cast())];
            for i in 0..MR {
                let ai = _mm256_set1_epi32(a.add(4 * i).cast::<i32>().read_unaligned());
                for v in 0..NV {
                    acc[i][v] = _mm256_dpbusd_avx_epi32(acc[i][v], ai, bv[v]);
                }
            }
            a = a.add(4 * MR);
            b = b.add(32 * NV);
        }
    }
    for i in 0..MR {
        for v in 0..NV {
            // SAFETY: the caller guarantees MR·16 writable i32 behind `tile`.
            unsafe { _mm256_storeu_si256(tile.add(i * 16 + 8 * v).cast(), acc[i][v]) };
        }
    }
}

impl QKernel for Zmm {
    const MR: usize = 6;
    const NR: usize = 64;
    const NAME: &'static str = "avx512-vnni";
    unsafe fn run(groups: usize, a: *const u8, b: *const i8, tile: *mut i32) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded contract (panels, tile, AVX-512 VNNI detected by the caller).
        unsafe {
            zmm_kernel(groups, a, b, tile)
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (groups, a, b, tile);
    }
}

impl QKernel for Ymm {
    const MR: usize = 6;
    const NR: usize = 16;
    const NAME: &'static str = "avx-vnni";
    unsafe fn run(groups: usize, a: *const u8, b: *const i8, tile: *mut i32) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded contract (panels, tile, AVX-VNNI detected by the caller).
        unsafe {
            ymm_kernel(groups, a, b, tile)
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (groups, a, b, tile);
    }
}

/// The problem: `batch` products of `A [m, k]` (or `[k, m]` with `trans_a`) by `B [k, n]`
/// (or `[n, k]` with `trans_b`), `B` shared or one per batch.
#[derive(Clone, Copy)]
pub struct Problem<'a> {
    /// Number of products.
    pub batch: usize,
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// Reduction.
    pub k: usize,
    /// All batches of `A`.
    pub a: &'a [i8],
    /// `A` is stored `[k, m]`.
    pub trans_a: bool,
    /// `B` (one, or one per batch).
    pub b: &'a [i8],
    /// `B` is stored `[n, k]`.
    pub trans_b: bool,
    /// One `B` for every batch.
    pub b_shared: bool,
    /// Where `B` is a constant: its packed panels and column sums, kept across calls.
    pub b_pack: Option<&'a PackSlot>,
}

/// All of a B operand packed for one kernel: the column panels `[g][NR][4]` one after the
/// other, and each column's offset correction `128·Σ_k b[k][j]` (zero past `n`).
struct PackedI8 {
    panels: Vec<i8>,
    comp: Vec<i32>,
}

/// Pack batch `batch`'s B (all column panels) into `panels` and `comp`, in parallel when
/// `parallel`.
fn pack_all<const NR: usize>(p: &Problem, batch: usize, panels: &mut [i8], comp: &mut [i32], parallel: bool) {
    let b = if p.b_shared { p.b } else { &p.b[batch * p.k * p.n..][..p.k * p.n] };
    let panel_bytes = p.k.div_ceil(4) * NR * 4;
    let pack = |(jp, (dst, c)): (usize, (&mut [i8], &mut [i32]))| pack_b::<NR>(p, b, jp * NR, dst, c);
    if parallel {
        panels.par_chunks_mut(panel_bytes).zip(comp.par_chunks_mut(NR)).enumerate().for_each(pack);
    } else {
        panels.chunks_mut(panel_bytes).zip(comp.chunks_mut(NR)).enumerate().for_each(pack);
    }
}

/// Where finished tiles go: `(batch, first row, first column, rows, columns, tile)` with the
/// tile's rows `K::NR` apart. Called concurrently for disjoint tiles.
pub trait Sink: Sync {
    /// Take one tile.
    fn tile(&self, batch: usize, row0: usize, col0: usize, rows: usize, cols: usize, tile: &[i32], stride: usize);
}

thread_local! {
    /// Each thread's A-block buffer, kept between calls.
    static PACK_A: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Pack B's columns `col0 .. col0 + NR` as `[g][NR][4]` into `dst` and set `comp[j - col0]`
/// to `128·Σ_k b[k][j]`.
fn pack_b<const NR: usize>(p: &Problem, b: &[i8], col0: usize, dst: &mut [i8], comp: &mut [i32]) {
    let (k, n) = (p.k, p.n);
    dst.fill(0);
    comp.fill(0);
    let full = k / 4;
    for j in 0..NR.min(n - col0) {
        let col = col0 + j;
        if p.trans_b {
            // Stored [n, k]: the column is a contiguous row; move it 4 bytes at a time.
            let row = &b[col * k..(col + 1) * k];
            let sum: i32 = row.iter().map(|&v| i32::from(v)).sum();
            for (g, w) in row[..full * 4].chunks_exact(4).enumerate() {
                dst[g * NR * 4 + j * 4..][..4].copy_from_slice(w);
            }
            for (t, &v) in row[full * 4..].iter().enumerate() {
                dst[full * NR * 4 + j * 4 + t] = v;
            }
            comp[j] = sum.wrapping_mul(128);
        } else {
            let mut sum = 0i32;
            for kk in 0..k {
                let v = b[kk * n + col];
                dst[(kk / 4) * NR * 4 + j * 4 + kk % 4] = v;
                sum = sum.wrapping_add(i32::from(v));
            }
            comp[j] = sum.wrapping_mul(128);
        }
    }
}

/// Pack A's rows `row0 .. row0 + rows` (of batch `a`) as MR-row panels `[g][MR][4]` of
/// `a + 128`, padding with 128 (the offset form of 0).
fn pack_a<const MR: usize>(p: &Problem, a: &[i8], row0: usize, rows: usize, groups: usize, dst: &mut [u8]) {
    let (k, m) = (p.k, p.m);
    dst.fill(128);
    let full = k / 4;
    for r in 0..rows {
        let i = row0 + r;
        let (panel, ir) = (r / MR, r % MR);
        let base = panel * groups * MR * 4 + ir * 4;
        if !p.trans_a {
            let row = &a[i * k..(i + 1) * k];
            for (g, w) in row[..full * 4].chunks_exact(4).enumerate() {
                let x = u32::from_le_bytes([w[0] as u8, w[1] as u8, w[2] as u8, w[3] as u8]) ^ 0x8080_8080;
                dst[base + g * MR * 4..][..4].copy_from_slice(&x.to_le_bytes());
            }
            for (t, &v) in row[full * 4..].iter().enumerate() {
                dst[base + full * MR * 4 + t] = (v as u8) ^ 0x80;
            }
        } else {
            for kk in 0..k {
                dst[base + (kk / 4) * MR * 4 + kk % 4] = (a[kk * m + i] as u8) ^ 0x80;
            }
        }
    }
}

/// A contiguous task: a row block and a range of column panels.
#[derive(Clone, Copy)]
struct Task {
    row0: usize,
    rows: usize,
    panels: (usize, usize),
}

fn tasks(m: usize, col_panels: usize, mc: usize, parts: usize) -> Vec<Task> {
    let blocks = m.div_ceil(mc).max(1);
    let want = parts * 2;
    let splits = if blocks >= want { 1 } else { want.div_ceil(blocks).min(col_panels).max(1) };
    let per = col_panels.div_ceil(splits).max(1);
    let mut out = Vec::new();
    for b in 0..blocks {
        let row0 = b * mc;
        let rows = mc.min(m - row0);
        for s in (0..col_panels).step_by(per) {
            out.push(Task { row0, rows, panels: (s, (s + per).min(col_panels)) });
        }
    }
    out
}

/// Run the product with kernel `K`, handing every tile to `sink`.
pub fn run<K: QKernel, const MR: usize, const NR: usize>(p: &Problem, sink: &dyn Sink) {
    debug_assert!(K::MR == MR && K::NR == NR);
    if p.m == 0 || p.n == 0 {
        return;
    }
    let groups = p.k.div_ceil(4);
    let col_panels = p.n.div_ceil(NR);
    let panel_bytes = groups * NR * 4;
    let macs = p.m * p.n * p.k;
    let parts = if macs >= PARALLEL_MACS { rayon::current_num_threads().max(1) } else { 1 };
    let mc = MR * PANELS_PER_BLOCK;
    let list = tasks(p.m, col_panels, mc, parts);
    // A constant B shared by all batches is packed once and kept with its buffer.
    let kept = p.b_pack.filter(|_| p.b_shared || p.batch == 1).map(|slot| {
        let key = PackKey { scheme: K::NAME, n: p.n, k: p.k, trans_b: p.trans_b };
        slot.get_or_build(key, || {
            let (mut panels, mut comp) = (vec![0i8; col_panels * panel_bytes], vec![0i32; col_panels * NR]);
            pack_all::<NR>(p, 0, &mut panels, &mut comp, p.n * p.k >= PARALLEL_MACS);
            let bytes = panels.len() + 4 * comp.len();
            Packed::new(PackedI8 { panels, comp }, bytes)
        })
    });
    let kept = kept.as_deref().and_then(Packed::get::<PackedI8>);
    let (mut own_panels, mut own_comp) = (Vec::new(), Vec::new());
    if kept.is_none() {
        own_panels = vec![0i8; col_panels * panel_bytes];
        own_comp = vec![0i32; col_panels * NR];
    }
    for batch in 0..p.batch {
        if kept.is_none() && (batch == 0 || !p.b_shared) {
            pack_all::<NR>(p, batch, &mut own_panels, &mut own_comp, parts > 1);
        }
        let a = &p.a[batch * p.m * p.k..][..p.m * p.k];
        let (bpack, comp) = match kept {
            Some(k) => (&k.panels[..], &k.comp[..]),
            None => (&own_panels[..], &own_comp[..]),
        };
        let task = |t: &Task| {
            PACK_A.with(|cell| {
                let mut fresh = Vec::new();
                let mut guard = cell.try_borrow_mut();
                let buf = match guard.as_deref_mut() {
                    Ok(v) => v,
                    Err(_) => &mut fresh,
                };
                let a_bytes = t.rows.div_ceil(MR) * groups * MR * 4;
                if buf.len() < a_bytes {
                    buf.resize(a_bytes, 0);
                }
                let apack = &mut buf[..a_bytes];
                pack_a::<MR>(p, a, t.row0, t.rows, groups, apack);
                let mut tile = [0i32; MAX_TILE];
                for jp in t.panels.0..t.panels.1 {
                    let col0 = jp * NR;
                    let cols = NR.min(p.n - col0);
                    let bp = &bpack[jp * panel_bytes..][..panel_bytes];
                    let cp = &comp[jp * NR..][..NR];
                    for (ip, ap) in apack.chunks_exact(groups * MR * 4).enumerate() {
                        let row0 = t.row0 + ip * MR;
                        let rows = MR.min(t.row0 + t.rows - row0);
                        // SAFETY: `ap` holds groups·MR·4 bytes, `bp` groups·NR·4, `tile`
                        // MAX_TILE ≥ MR·NR i32; the caller chose `K` after detecting its ISA.
                        unsafe { K::run(groups, ap.as_ptr(), bp.as_ptr(), tile.as_mut_ptr()) };
                        for row in tile[..rows * NR].chunks_exact_mut(NR) {
                            for (v, &c) in row.iter_mut().zip(cp) {
                                *v = v.wrapping_sub(c);
                            }
                        }
                        sink.tile(batch, row0, col0, rows, cols, &tile[..rows * NR], NR);
                    }
                }
            })
        };
        if list.len() > 1 && parts > 1 {
            list.par_iter().for_each(task);
        } else {
            list.iter().for_each(task);
        }
    }
}

/// Which dot-product kernel this CPU runs at the active SIMD level, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// AVX-512 VNNI.
    Zmm,
    /// AVX-VNNI.
    Ymm,
}

impl Level {
    /// The level for the active SIMD level (`OMNIFUSE_CPU_ISA` caps it), or none.
    pub fn detect() -> Option<Level> {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::features::Isa;
            let isa = Isa::active();
            if isa == Isa::Avx512 && std::arch::is_x86_feature_detected!("avx512vnni") {
                return Some(Level::Zmm);
            }
            if isa >= Isa::Avx2 && std::arch::is_x86_feature_detected!("avxvnni") {
                return Some(Level::Ymm);
            }
        }
        None
    }

    /// Kernel name.
    pub fn name(self) -> &'static str {
        match self {
            Level::Zmm => Zmm::NAME,
            Level::Ymm => Ymm::NAME,
        }
    }

    /// Run `p` at this level (few rows on AVX-512 VNNI read the weight in place).
    pub fn run(self, p: &Problem, sink: &dyn Sink) {
        if p.m == 0 || p.n == 0 {
            return;
        }
        if self == Level::Zmm && super::vnni_small::fits(p) {
            return super::vnni_small::run(p, sink);
        }
        match self {
            Level::Zmm => run::<Zmm, 6, 64>(p, sink),
            Level::Ymm => run::<Ymm, 6, 16>(p, sink),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::GemmArgs;
    use omnifuse_core::op::Epilogue;

    struct Collect {
        m: usize,
        n: usize,
        out: std::sync::Mutex<Vec<i32>>,
    }

    impl Sink for Collect {
        fn tile(&self, batch: usize, row0: usize, col0: usize, rows: usize, cols: usize, tile: &[i32], stride: usize) {
            let mut out = self.out.lock().expect("no test thread panicked");
            for r in 0..rows {
                for c in 0..cols {
                    out[(batch * self.m + row0 + r) * self.n + col0 + c] = tile[r * stride + c];
                }
            }
        }
    }

    /// Every dot-product kernel this CPU has, on full-range i8 (−128 included, so the
    /// unsigned offset and the wrapping sums are exercised) against the reference.
    #[test]
    fn every_level_matches_the_reference_on_full_range_bytes() {
        let mut levels = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512vnni") && std::arch::is_x86_feature_detected!("avx512bw") {
                levels.push(Level::Zmm);
            }
            if std::arch::is_x86_feature_detected!("avxvnni") {
                levels.push(Level::Ymm);
            }
        }
        if levels.is_empty() {
            eprintln!("no VNNI on this CPU: the dot-product kernels cannot run here");
            return;
        }
        let mut seed = 0x1234_5678u64;
        let mut byte = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 56) as u8 as i8
        };
        let shapes = [
            (1, 1, 1, 1),
            (2, 7, 65, 9),
            (1, 13, 129, 1023),
            (3, 6, 64, 4),
            (1, 100, 3, 2050),
            (2, 5, 130, 200),
            (1, 8, 64, 64),
        ];
        for &(batch, m, n, k) in &shapes {
            for (ta, tb, shared) in
                [(false, true, true), (true, false, false), (false, false, true), (true, true, false)]
            {
                let a: Vec<i8> = (0..batch * m * k).map(|_| byte()).collect();
                let nb = if shared { 1 } else { batch };
                let b: Vec<i8> = (0..nb * k * n).map(|_| byte()).collect();
                let g = GemmArgs {
                    batch,
                    m,
                    n,
                    k,
                    a: &a,
                    trans_a: ta,
                    b: &b,
                    trans_b: tb,
                    b_shared: shared,
                    epilogue: Epilogue::default(),
                    bias: None,
                    residual: None,
                    b_pack: None,
                    b_wide: None,
                };
                let mut want = vec![0i32; batch * m * n];
                crate::Kernels::gemm_i8(&crate::reference::Reference, &g, &mut want);
                for &level in &levels {
                    let p = Problem {
                        batch,
                        m,
                        n,
                        k,
                        a: &a,
                        trans_a: ta,
                        b: &b,
                        trans_b: tb,
                        b_shared: shared,
                        b_pack: None,
                    };
                    let sink = Collect { m, n, out: std::sync::Mutex::new(vec![i32::MIN; batch * m * n]) };
                    level.run(&p, &sink);
                    let got = sink.out.into_inner().expect("no test thread panicked");
                    assert!(got == want, "{level:?} differs at {batch}x{m}x{n}x{k} ta={ta} tb={tb} shared={shared}");
                }
            }
        }
    }
}
