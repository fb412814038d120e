//! The INT8 tensor-core path (`kernels/gpu/qgemm_tc.cu`) on sm_80+: `Op::QGemm` with the
//! dequantising epilogue fused (f32 output, or requantised i8), float `A` quantised per row
//! first by `qgemm_quantize_*` into the backend's stream-ordered workspace; and the plain
//! i8 × i8 → i32 `Op::Gemm` when `B` is transposed (`[N, K]`), for [`super::gemm_tc`].
//!
//! Declined (`Ok(false)`, the general path runs it): an arch below sm_80, K % 16 ≠ 0 (rows
//! of whole 16-byte chunks), dimensions beyond `i32`, more than 65535 batches or row tiles,
//! pointers not 16-byte aligned, and for the i8 `Op::Gemm` a transposed A or a row-major B.

use omnifuse_core::infer::gemm_dims;
use omnifuse_core::op::{GemmSpec, Op};
use omnifuse_core::{DType, Result, Tensor};

use super::gemm_tc::{TILES, Tile, aligned, pick_tile};
use crate::device::GpuDevice;
use crate::kernel::{Arg, Kernel, Source, Variant, blocks};

/// Output of the INT8 kernel: the `OUT_MODE` define and the kernel symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutMode {
    /// Dequantised f32.
    F32,
    /// Requantised i8.
    I8,
    /// Raw i32 sums (no epilogue).
    I32,
}

impl OutMode {
    const ALL: [OutMode; 3] = [OutMode::F32, OutMode::I8, OutMode::I32];

    fn code(self) -> u8 {
        match self {
            OutMode::F32 => 0,
            OutMode::I8 => 1,
            OutMode::I32 => 2,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            OutMode::F32 => "qgemm_tc_f32",
            OutMode::I8 => "qgemm_tc_i8",
            OutMode::I32 => "qgemm_tc_i32",
        }
    }
}

/// Threads per block of `qgemm_quantize_*` (QROW_THREADS in the source).
const QROW_THREADS: u32 = 128;

/// The define set of one qgemm_tc.cu module.
fn variant(mode: OutMode, tile: Tile) -> Variant {
    let mut defines = vec![format!("-DOUT_MODE={}", mode.code())];
    defines.extend(tile.defines());
    Variant { source: Source::QGemmTc, defines }
}

/// The shape checks shared by both entry points: `Some(tile, grid)` when the kernel takes
/// `batch` products of `m × n × k`.
fn plan<D: GpuDevice>(be: &D, batch: usize, m: usize, n: usize, k: usize) -> Option<(Tile, [u32; 3])> {
    let fits = |v: usize| v <= i32::MAX as usize;
    if be.tensor_cores().is_none_or(|arch| arch < 80) || !fits(m) || !fits(n) || !fits(k) || !k.is_multiple_of(16) {
        return None;
    }
    let tile = pick_tile(be, batch, m, n);
    tile.grid(batch, m, n).map(|g| (tile, g))
}

/// Everything one INT8 kernel launch takes beyond its module.
struct Launch {
    a: u64,
    b: u64,
    a_scale: u64,
    b_scale: u64,
    a_scale_rows: usize,
    requant: f32,
    bias: Option<u64>,
    res: Option<u64>,
    y: u64,
    m: usize,
    n: usize,
    k: usize,
    a_stride: usize,
    b_stride: usize,
    scale: f32,
    act: i32,
}

fn enqueue<D: GpuDevice>(be: &D, mode: OutMode, tile: Tile, grid: [u32; 3], l: &Launch) -> Result<()> {
    let kernel = Kernel {
        variant: variant(mode, tile),
        symbol: mode.symbol().into(),
        grid,
        block: [tile.threads(), 1, 1],
        shared_bytes: tile.shared_bytes(),
    };
    let args = [
        Arg::Ptr(l.a),
        Arg::Ptr(l.b),
        Arg::Ptr(l.a_scale),
        Arg::Ptr(l.b_scale),
        Arg::I64(l.a_scale_rows as i64),
        Arg::F32(l.requant),
        Arg::Ptr(l.bias.unwrap_or(l.y)),
        Arg::Ptr(l.res.unwrap_or(l.y)),
        Arg::Ptr(l.y),
        Arg::I32(l.m as i32),
        Arg::I32(l.n as i32),
        Arg::I32(l.k as i32),
        Arg::I64(l.a_stride as i64),
        Arg::I64(l.b_stride as i64),
        Arg::F32(l.scale),
        Arg::I32(l.bias.is_some() as i32),
        Arg::I32(l.act),
        Arg::I32(l.res.is_some() as i32),
    ];
    be.enqueue(&kernel, &args)
}

/// The plain i8 GEMM (`i8 × i8 → i32`, wrapping, no epilogue) with `B` stored `[N, K]`.
pub(crate) fn launch_i8_gemm<D: GpuDevice>(be: &D, spec: &GemmSpec, inputs: &[&Tensor], out: &Tensor) -> Result<bool> {
    if spec.trans_a || !spec.trans_b || !spec.epilogue.is_identity() {
        return Ok(false);
    }
    let op = Op::Gemm(*spec);
    let d = gemm_dims(&op, &inputs[0].desc, &inputs[1].desc, false, true)?;
    if out.desc.numel() == 0 {
        return Ok(true);
    }
    let Some((tile, grid)) = plan(be, d.batch, d.m, d.n, d.k) else { return Ok(false) };
    let (a, b, y) = (be.ptr(inputs[0])?, be.ptr(inputs[1])?, be.ptr(out)?);
    if !aligned(&[a, b, y]) {
        return Ok(false);
    }
    let l = Launch {
        a,
        b,
        a_scale: y,
        b_scale: y,
        a_scale_rows: 0,
        requant: 1.0,
        bias: None,
        res: None,
        y,
        m: d.m,
        n: d.n,
        k: d.k,
        a_stride: d.m * d.k,
        b_stride: if d.b_shared { 0 } else { d.k * d.n },
        scale: 1.0,
        act: 0,
    };
    enqueue(be, OutMode::I32, tile, grid, &l)?;
    Ok(true)
}

/// Run an `Op::QGemm` on the tensor cores; `Ok(false)` for the cases listed in the module
/// documentation.
pub(crate) fn launch<D: GpuDevice>(be: &D, op: &Op, inputs: &[&Tensor], out: &Tensor) -> Result<bool> {
    let Op::QGemm(spec) = op else { return Ok(false) };
    if inputs.len() < 3 {
        return Ok(false);
    }
    let dt = inputs[0].desc.dtype;
    let quantize = match dt {
        DType::I8 => None,
        DType::F32 => Some("qgemm_quantize_f32"),
        DType::F16 => Some("qgemm_quantize_f16"),
        DType::BF16 => Some("qgemm_quantize_bf16"),
        DType::I32 => return Ok(false),
    };
    let d = gemm_dims(op, &inputs[0].desc, &inputs[1].desc, false, true)?;
    if out.desc.numel() == 0 {
        return Ok(true);
    }
    // B is rank 2 (shared): all batches' rows form one [batch·M, K] A.
    let rows = d.batch * d.m;
    let Some((tile, grid)) = plan(be, 1, rows, d.n, d.k) else { return Ok(false) };
    let ep = &spec.epilogue;
    let mut extra = inputs[3 + usize::from(dt == DType::I8)..].iter();
    let bias = if ep.bias { extra.next().map(|t| be.ptr(t)).transpose()? } else { None };
    let res = if ep.residual { extra.next().map(|t| be.ptr(t)).transpose()? } else { None };
    let (x, b, b_scale, y) = (be.ptr(inputs[0])?, be.ptr(inputs[1])?, be.ptr(inputs[2])?, be.ptr(out)?);
    let mut ptrs = vec![x, b, b_scale, y];
    ptrs.extend(bias.iter().chain(res.iter()));
    if !aligned(&ptrs) {
        return Ok(false);
    }
    let mode = if spec.requant.is_some() { OutMode::I8 } else { OutMode::F32 };
    let run = |a: u64, a_scale: u64, a_scale_rows: usize| {
        let l = Launch {
            a,
            b,
            a_scale,
            b_scale,
            a_scale_rows,
            requant: spec.requant.unwrap_or(1.0),
            bias,
            res,
            y,
            m: rows,
            n: d.n,
            k: d.k,
            a_stride: 0,
            b_stride: 0,
            scale: ep.scale,
            act: ep.activation.code(),
        };
        enqueue(be, mode, tile, grid, &l)
    };
    match quantize {
        None => {
            let s = inputs[3];
            run(x, be.ptr(s)?, if s.desc.numel() == 1 { 0 } else { rows })?;
        }
        Some(symbol) => {
            // Float A is quantised per row into the backend's stream-ordered workspace: the
            // i8 rows, then (256-byte aligned) the f32 steps; the GEMM follows in stream order.
            let q_bytes = (rows * d.k).next_multiple_of(256);
            be.with_workspace(q_bytes + 4 * rows, |qp| {
                let sp = qp + q_bytes as u64;
                let kernel = Kernel {
                    variant: variant(mode, tile),
                    symbol: symbol.into(),
                    grid: [blocks(rows, 1), 1, 1],
                    block: [QROW_THREADS, 1, 1],
                    shared_bytes: 0,
                };
                be.enqueue(&kernel, &[Arg::Ptr(x), Arg::Ptr(qp), Arg::Ptr(sp), Arg::I32(d.k as i32)])?;
                run(qp, sp, rows)
            })?;
        }
    }
    Ok(true)
}

/// Every qgemm_tc.cu module this path may compile: the three outputs, both tiles (the
/// quantise kernels live in every module).
pub(crate) fn variants() -> Vec<Variant> {
    OutMode::ALL.iter().flat_map(|&m| TILES.iter().map(move |&t| variant(m, t))).collect()
}
