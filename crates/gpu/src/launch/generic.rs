//! The general path: every op × dtype of the core set on the SIMT kernels of `kernels/gpu`
//! (`gemm.cu`, `attention.cu`, `pointwise.cu`, `norm.cu`, `layout.cu`, `conv.cu`), ported from
//! the OpenCL kernels and mapped here as `crates/opencl/src/launch.rs` maps those: which
//! module (source and defines), which symbol, which arguments and which launch shape. Shapes
//! were validated by `check_launch`; data-dependent checks (embedding ids, packed-batch
//! offsets, modality ids) read those small inputs back and fail here, before anything is
//! enqueued. Launch shapes hold on any warp width: the 1-D kernels, the row reductions and
//! the GEMM use 256-thread blocks (whole warps of 32 or 64 lanes, and their kernels derive
//! the warp count from `OF_WARP`); attention gives each of its `ATT_WARPS` warps its own
//! query rows, so its block is `ATT_WARPS` × the device's warp width, and its key tile (a
//! define) is the largest whose shared memory fits the device. Nothing here needs a temporary buffer: the INT8 GEMM quantises float rows inside
//! the kernel, permutations pass their (merged) dims by value, and plain attention passes its
//! fixed sequence lengths instead of offset tables.

use omnifuse_core::attention::{MaskMode, sequences};
use omnifuse_core::infer::gemm_dims;
use omnifuse_core::op::{Op, PoolKind};
use omnifuse_core::{DType, Error, Result, Tensor};

use crate::device::GpuDevice;
use crate::kernel::{Arg, Kernel, Source, Variant};

/// Threads per block of the 1-D kernels and of the row reductions (`PW_BLOCK`, `LAYOUT_BLOCK`,
/// `CONV_BLOCK`, `WG` at their defaults).
const BLOCK: usize = 256;
/// Most blocks a grid-stride launch uses.
const GRID_1D_MAX: usize = 1 << 20;
/// The grid's y and z limit.
const GRID_YZ_MAX: usize = 65535;
/// The grid's x limit.
const GRID_X_MAX: usize = i32::MAX as usize;
/// A `gemm.cu` tile: TM × TN outputs per block, WM × WN per thread.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct GemmTile {
    tm: usize,
    tn: usize,
    wm: usize,
    wn: usize,
}
/// The file's defaults: 256 threads, 4 × 4 outputs each.
const GEMM_SMALL: GemmTile = GemmTile { tm: 64, tn: 64, wm: 4, wn: 4 };
/// For large products: 256 threads, 8 × 8 outputs each (half the shared-memory reads per fma).
const GEMM_BIG: GemmTile = GemmTile { tm: 128, tn: 128, wm: 8, wn: 8 };
/// Blocks at the big tile from which it is taken (about two waves on a large GPU).
const GEMM_BIG_BLOCKS: usize = 256;
/// `attention.cu`: warps per block and query rows per warp (its defaults). The block is
/// `ATT_WARPS` warps of the device's width (the kernel assigns rows by `tid / OF_WARP`).
const ATT_WARPS: usize = 4;
const ATT_RPW: usize = 4;
/// Query rows per block of `attention.cu`.
const ATT_BQ: usize = ATT_WARPS * ATT_RPW;
/// Largest head dimension `attention.cu` takes.
pub(crate) const ATT_DMAX: usize = 256;
/// The head-dimension buckets `attention.cu` is compiled for.
const ATT_BUCKETS: [usize; 4] = [32, 64, 128, 256];
/// The smallest key tile `attention.cu` is compiled with (where the default does not fit the
/// device's shared memory, the tile halves down to this).
const ATT_BK_MIN: usize = 16;
/// Most axes `permute_*` takes after unit axes are dropped and adjacent ones merged.
const PERM_MAX: usize = 8;

/// The symbol suffix of storage type `d`.
fn ty(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::I8 => "i8",
        DType::I32 => "i32",
    }
}

/// The raw-word symbol suffix for data movement of `d`.
fn raw(d: DType) -> &'static str {
    match d.size() {
        1 => "x8",
        2 => "x16",
        _ => "x32",
    }
}

fn prod(d: &[usize]) -> usize {
    d.iter().product()
}

fn u(v: usize) -> Arg {
    Arg::U64(v as u64)
}

fn int(v: usize, what: &str) -> Result<Arg> {
    i32::try_from(v).map(Arg::I32).map_err(|_| Error::invalid(format!("{what} is {v}, beyond the kernel's int range")))
}

fn flag(b: bool) -> Arg {
    Arg::I32(i32::from(b))
}

/// A grid dimension, or an error naming what exceeded the limit.
fn dim(n: usize, max: usize, what: &str) -> Result<u32> {
    if n > max {
        return Err(Error::invalid(format!("{what}: {n} blocks exceed the grid limit of {max}")));
    }
    Ok(n as u32)
}

/// The `gemm.cu` module of tile `t`.
fn gemm_variant(t: GemmTile) -> Variant {
    if t == GEMM_SMALL {
        return plain(Source::Gemm);
    }
    Variant {
        source: Source::Gemm,
        defines: vec![
            format!("-DTM={}", t.tm),
            format!("-DTN={}", t.tn),
            format!("-DWM={}", t.wm),
            format!("-DWN={}", t.wn),
        ],
    }
}

/// The tile for an `m × n` output in `batch` products.
fn gemm_tile(m: usize, n: usize, batch: usize) -> GemmTile {
    let big = m.div_ceil(GEMM_BIG.tm).saturating_mul(n.div_ceil(GEMM_BIG.tn)).saturating_mul(batch.min(GRID_YZ_MAX));
    if big >= GEMM_BIG_BLOCKS { GEMM_BIG } else { GEMM_SMALL }
}

/// The grid and block of a `gemm.cu` launch.
fn gemm_shape(t: GemmTile, m: usize, n: usize, batch: usize, what: &str) -> Result<([u32; 3], [u32; 3])> {
    let grid = [
        dim(m.div_ceil(t.tm), GRID_X_MAX, &format!("{what} rows"))?,
        dim(n.div_ceil(t.tn), GRID_YZ_MAX, &format!("{what} columns"))?,
        batch.clamp(1, GRID_YZ_MAX) as u32,
    ];
    Ok((grid, [(t.tn / t.wn) as u32, (t.tm / t.wm) as u32, 1]))
}

/// The module of `source` at its default defines.
fn plain(source: Source) -> Variant {
    Variant::new(source, &[])
}

/// The `attention.cu` module for head-dimension bucket `dmax` with `bk` keys per tile.
fn attention_variant(dmax: usize, bk: usize) -> Variant {
    Variant { source: Source::Attention, defines: vec![format!("-DDMAX={dmax}"), format!("-DBK={bk}")] }
}

/// The default key tile at `dmax`: 64, or 32 at 256 so that shared memory stays near 82 KiB.
fn attention_default_bk(dmax: usize) -> usize {
    if dmax >= 256 { 32 } else { 64 }
}

/// Dynamic shared memory of `attention.cu` at `dmax` with `bk` keys per tile (see the file's
/// header).
fn attention_shared(dmax: usize, bk: usize) -> usize {
    4 * (ATT_BQ * dmax + bk * (dmax + 1) + bk * dmax + ATT_BQ * bk + bk)
}

/// The key tiles tried at `dmax`, largest first: the default, halved down to [`ATT_BK_MIN`].
fn attention_tiles(dmax: usize) -> impl Iterator<Item = usize> {
    std::iter::successors(Some(attention_default_bk(dmax)), |&bk| Some(bk / 2)).take_while(|&bk| bk >= ATT_BK_MIN)
}

/// The largest key tile at `dmax` whose shared memory fits `max_shared` bytes, if any.
fn attention_tile(dmax: usize, max_shared: usize) -> Option<usize> {
    attention_tiles(dmax).find(|&bk| attention_shared(dmax, bk) <= max_shared)
}

/// Enqueue a grid-stride 1-D kernel over `n` items (nothing for `n == 0`).
fn run_1d<D: GpuDevice>(be: &D, source: Source, symbol: String, args: &[Arg], n: usize) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let k = Kernel {
        variant: plain(source),
        symbol,
        grid: [n.div_ceil(BLOCK).min(GRID_1D_MAX) as u32, 1, 1],
        block: [BLOCK as u32, 1, 1],
        shared_bytes: 0,
    };
    be.enqueue(&k, args)
}

/// Enqueue `op` on `be` through the general kernels. `check_launch` has run.
pub(crate) fn launch<D: GpuDevice>(be: &D, op: &Op, inputs: &[&Tensor], out: &Tensor) -> Result<()> {
    let dt = inputs.first().map_or(DType::F32, |t| t.desc.dtype);
    let tname = ty(dt);
    let n_out = out.desc.numel();
    let y = be.ptr(out)?;
    let x0 = match inputs.first() {
        Some(t) => be.ptr(t)?,
        None => y,
    };
    let sym = |name: &str| format!("{name}_{tname}");
    match op {
        Op::Gemm(spec) => {
            let d = gemm_dims(op, &inputs[0].desc, &inputs[1].desc, spec.trans_a, spec.trans_b)?;
            if n_out == 0 {
                return Ok(());
            }
            let infix = match (spec.trans_a, spec.trans_b) {
                (false, false) => "nn",
                (false, true) => "nt",
                (true, false) => "tn",
                (true, true) => "tt",
            };
            let ep = &spec.epilogue;
            let mut extra = inputs[2..].iter();
            let bias = if ep.bias { extra.next().map(|t| be.ptr(t)).transpose()? } else { None };
            let res = if ep.residual { extra.next().map(|t| be.ptr(t)).transpose()? } else { None };
            let tile = gemm_tile(d.m, d.n, d.batch);
            let (grid, block) = gemm_shape(tile, d.m, d.n, d.batch, "gemm")?;
            let k = Kernel {
                variant: gemm_variant(tile),
                symbol: format!("gemm_tiled_{infix}_{tname}"),
                grid,
                block,
                shared_bytes: 0,
            };
            let args = [
                Arg::Ptr(x0),
                Arg::Ptr(be.ptr(inputs[1])?),
                Arg::Ptr(bias.unwrap_or(y)),
                Arg::Ptr(res.unwrap_or(y)),
                Arg::Ptr(y),
                u(d.m),
                u(d.n),
                u(d.k),
                u(d.batch),
                u(if d.b_shared { 0 } else { d.k * d.n }),
                Arg::F32(ep.scale),
                flag(bias.is_some()),
                Arg::I32(ep.activation.code()),
                flag(res.is_some()),
            ];
            be.enqueue(&k, &args)
        }
        Op::QGemm(spec) => {
            let d = gemm_dims(op, &inputs[0].desc, &inputs[1].desc, false, true)?;
            let rows = d.batch * d.m;
            if rows == 0 || d.n == 0 {
                return Ok(());
            }
            let a_i8 = dt == DType::I8;
            // Float A is quantised per row inside the kernel (its a_scale argument is unused).
            let (a_scale, a_scale_rows) = if a_i8 {
                let s = inputs[3];
                (be.ptr(s)?, if s.desc.numel() == 1 { 0 } else { rows })
            } else {
                (y, rows)
            };
            let ep = &spec.epilogue;
            let mut extra = inputs[3 + usize::from(a_i8)..].iter();
            let bias = if ep.bias { extra.next().map(|t| be.ptr(t)).transpose()? } else { None };
            let res = if ep.residual { extra.next().map(|t| be.ptr(t)).transpose()? } else { None };
            let variant = if spec.requant.is_some() { "tiled_requant" } else { "tiled" };
            let tile = gemm_tile(rows, d.n, 1);
            let (grid, block) = gemm_shape(tile, rows, d.n, 1, "qgemm")?;
            let k = Kernel {
                variant: gemm_variant(tile),
                symbol: format!("qgemm_{variant}_{tname}"),
                grid,
                block,
                shared_bytes: 0,
            };
            let args = [
                Arg::Ptr(x0),
                Arg::Ptr(be.ptr(inputs[1])?),
                Arg::Ptr(a_scale),
                Arg::Ptr(be.ptr(inputs[2])?),
                u(a_scale_rows),
                Arg::F32(spec.requant.unwrap_or(1.0)),
                Arg::Ptr(bias.unwrap_or(y)),
                Arg::Ptr(res.unwrap_or(y)),
                Arg::Ptr(y),
                u(rows),
                u(d.n),
                u(d.k),
                Arg::F32(ep.scale),
                flag(bias.is_some()),
                Arg::I32(ep.activation.code()),
                flag(res.is_some()),
            ];
            be.enqueue(&k, &args)
        }
        Op::LayerNorm { .. } | Op::Softmax => {
            let n = inputs[0].desc.shape.last();
            if n == 0 || n_out == 0 {
                return Ok(());
            }
            let rows = n_out / n;
            let (name, args) = match op {
                Op::LayerNorm { eps } => (
                    "layernorm",
                    vec![
                        Arg::Ptr(x0),
                        Arg::Ptr(be.ptr(inputs[1])?),
                        Arg::Ptr(be.ptr(inputs[2])?),
                        Arg::Ptr(y),
                        u(n),
                        Arg::F32(*eps),
                    ],
                ),
                _ => ("softmax", vec![Arg::Ptr(x0), Arg::Ptr(y), u(n)]),
            };
            let k = Kernel {
                variant: plain(Source::Norm),
                symbol: sym(name),
                grid: [dim(rows, GRID_X_MAX, name)?, 1, 1],
                block: [BLOCK as u32, 1, 1],
                shared_bytes: 0,
            };
            be.enqueue(&k, &args)
        }
        Op::Pool { kind, axis } => {
            let d = inputs[0].desc.shape.dims();
            let (outer, len, inner) = (prod(&d[..*axis]), d[*axis], prod(&d[axis + 1..]));
            let kind = match kind {
                PoolKind::Mean => 0,
                PoolKind::Max => 1,
            };
            let args = [Arg::Ptr(x0), Arg::Ptr(y), u(outer), u(len), u(inner), Arg::I32(kind)];
            run_1d(be, Source::Norm, sym("pool"), &args, outer * inner)
        }
        Op::Gelu | Op::Relu => {
            let name = if matches!(op, Op::Gelu) { "gelu" } else { "relu" };
            run_1d(be, Source::Pointwise, sym(name), &[Arg::Ptr(x0), Arg::Ptr(y), u(n_out)], n_out)
        }
        Op::Scale { factor } => {
            let args = [Arg::Ptr(x0), Arg::Ptr(y), u(n_out), Arg::F32(*factor)];
            run_1d(be, Source::Pointwise, sym("scale"), &args, n_out)
        }
        Op::Add | Op::Mul => {
            let name = if matches!(op, Op::Add) { "add" } else { "mul" };
            let nb = inputs[1].desc.numel();
            let args = [Arg::Ptr(x0), Arg::Ptr(be.ptr(inputs[1])?), Arg::Ptr(y), u(n_out), u(nb)];
            run_1d(be, Source::Pointwise, sym(name), &args, if nb == 0 { 0 } else { n_out })
        }
        Op::Quantize { scale } => {
            let args = [Arg::Ptr(x0), Arg::Ptr(y), u(n_out), Arg::F32(*scale)];
            run_1d(be, Source::Pointwise, sym("quantize"), &args, n_out)
        }
        Op::Dequantize { scale } => {
            let args = [Arg::Ptr(x0), Arg::Ptr(y), u(n_out), Arg::F32(*scale)];
            run_1d(be, Source::Pointwise, sym("dequantize"), &args, n_out)
        }
        Op::Embedding => {
            let t = inputs[0].desc.shape.dims();
            let (rows, d) = (t[0], t[1]);
            let ids = be.read_i32(inputs[1])?;
            if let Some((pos, &id)) = ids.iter().enumerate().find(|&(_, &id)| id < 0 || id as usize >= rows) {
                return Err(Error::invalid(format!(
                    "embedding: id {id} at position {pos} is outside the table's 0..{rows}"
                )));
            }
            let args = [Arg::Ptr(x0), Arg::Ptr(be.ptr(inputs[1])?), Arg::Ptr(y), u(n_out), u(d)];
            run_1d(be, Source::Layout, format!("embedding_{}", raw(dt)), &args, n_out)
        }
        Op::Conv1d { bias, stride } => {
            let (xd, wd) = (inputs[0].desc.shape.dims(), inputs[1].desc.shape.dims());
            let b = if *bias { be.ptr(inputs[2])? } else { y };
            let args = [
                Arg::Ptr(x0),
                Arg::Ptr(be.ptr(inputs[1])?),
                Arg::Ptr(b),
                Arg::Ptr(y),
                u(xd[0]),
                u(xd[1]),
                u(xd[2]),
                u(wd[0]),
                u(wd[2]),
                u(*stride),
                flag(*bias),
            ];
            run_1d(be, Source::Conv, sym("conv1d"), &args, n_out)
        }
        Op::Im2col { patch } => {
            let d = inputs[0].desc.shape.dims();
            let args = [Arg::Ptr(x0), Arg::Ptr(y), u(n_out), u(d[1]), u(d[2]), u(d[3]), u(*patch)];
            run_1d(be, Source::Layout, format!("im2col_{}", raw(dt)), &args, n_out)
        }
        Op::Concat { axis } => {
            let outer = prod(&inputs[0].desc.shape.dims()[..*axis]);
            let total = prod(&out.desc.shape.dims()[*axis..]);
            let mut col = 0;
            for t in inputs {
                let inner = prod(&t.desc.shape.dims()[*axis..]);
                let args = [Arg::Ptr(be.ptr(t)?), Arg::Ptr(y), u(outer), u(inner), u(inner), u(0), u(total), u(col)];
                run_1d(be, Source::Layout, format!("copy_rows_{}", raw(dt)), &args, outer * inner)?;
                col += inner;
            }
            Ok(())
        }
        Op::Slice { axis, start, end } => {
            let d = inputs[0].desc.shape.dims();
            let (outer, len, inner) = (prod(&d[..*axis]), d[*axis], prod(&d[axis + 1..]));
            let keep = (end - start) * inner;
            let args = [Arg::Ptr(x0), Arg::Ptr(y), u(outer), u(keep), u(len * inner), u(start * inner), u(keep), u(0)];
            run_1d(be, Source::Layout, format!("copy_rows_{}", raw(dt)), &args, outer * keep)
        }
        Op::Reshape { .. } => be.copy(inputs[0], out, out.desc.bytes()),
        Op::Permute { perm } => {
            let (dims, strides) = merge_permutation(inputs[0].desc.shape.dims(), perm);
            if dims.len() > PERM_MAX {
                return Err(Error::invalid(format!(
                    "permute: {} independent axes after merging exceed the GPU kernel's {PERM_MAX}",
                    dims.len()
                )));
            }
            let mut args = vec![Arg::Ptr(x0), Arg::Ptr(y), u(n_out), int(dims.len(), "permute rank")?];
            args.extend((0..PERM_MAX).map(|a| u(dims.get(a).copied().unwrap_or(1))));
            args.extend((0..PERM_MAX).map(|a| u(strides.get(a).copied().unwrap_or(0))));
            run_1d(be, Source::Layout, format!("permute_{}", raw(dt)), &args, n_out)
        }
        Op::FusedAttention(spec) => {
            let (qd, kd) = (inputs[0].desc.shape.dims(), inputs[1].desc.shape.dims());
            let cu_q = be.read_i32(inputs[3])?;
            let cu_k = be.read_i32(inputs[4])?;
            let seq_q = sequences("cu_seqlens_q", &cu_q, qd[0])?;
            sequences("cu_seqlens_k", &cu_k, kd[0])?;
            for (what, t) in [("modality_q", inputs[5]), ("modality_k", inputs[6])] {
                let ids = be.read_i8(t)?;
                if let Some((at, &id)) =
                    ids.iter().enumerate().find(|&(_, &id)| id < 0 || id as usize >= spec.modalities)
                {
                    return Err(Error::invalid(format!(
                        "fused_attention: {what}[{at}] is {id}, expected a modality id in 0..{}",
                        spec.modalities
                    )));
                }
            }
            let mut extra = inputs[7..].iter();
            let pairs = if spec.mask == MaskMode::Pairs { extra.next().map(|t| be.ptr(t)).transpose()? } else { None };
            let bias = if spec.bias { extra.next().map(|t| be.ptr(t)).transpose()? } else { None };
            let flash = Flash {
                heads: spec.heads,
                kv_heads: spec.kv_heads,
                head_dim: qd[2],
                modalities: spec.modalities,
                mask: spec.mask,
                scale: spec.scale.unwrap_or(1.0 / (qd[2] as f32).sqrt()),
                sequences: seq_q.len(),
                max_lq: seq_q.iter().map(|s| s.1).max().unwrap_or(0),
                tokens: qd[0].max(kd[0]),
                fixed_lq: -1,
                fixed_lk: -1,
            };
            let ptrs = FlashPtrs {
                q: x0,
                k: be.ptr(inputs[1])?,
                v: be.ptr(inputs[2])?,
                cu_q: be.ptr(inputs[3])?,
                cu_k: be.ptr(inputs[4])?,
                mod_q: be.ptr(inputs[5])?,
                mod_k: be.ptr(inputs[6])?,
                pairs,
                bias,
                y,
            };
            flash_attention(be, dt, &flash, &ptrs)
        }
        Op::Attention { heads, causal, scale } => {
            let (qd, kd) = (inputs[0].desc.shape.dims(), inputs[1].desc.shape.dims());
            let (batch, sq, sk) = (qd[0], qd[1], kd[1]);
            let head_dim = qd[2] / heads;
            let too_long = |what: &str| Error::invalid(format!("attention: {what} exceeds the kernel's int range"));
            let flash = Flash {
                heads: *heads,
                kv_heads: *heads,
                head_dim,
                modalities: 1,
                mask: if *causal { MaskMode::Causal } else { MaskMode::Full },
                scale: scale.unwrap_or(1.0 / (head_dim as f32).sqrt()),
                sequences: batch,
                max_lq: sq,
                tokens: batch * sq.max(sk),
                fixed_lq: i32::try_from(sq).map_err(|_| too_long("the query length"))?,
                fixed_lk: i32::try_from(sk).map_err(|_| too_long("the key length"))?,
            };
            let ptrs = FlashPtrs {
                q: x0,
                k: be.ptr(inputs[1])?,
                v: be.ptr(inputs[2])?,
                cu_q: y,
                cu_k: y,
                mod_q: y,
                mod_k: y,
                pairs: None,
                bias: None,
                y,
            };
            flash_attention(be, dt, &flash, &ptrs)
        }
    }
}

/// Drop unit axes of a permutation and merge runs of output axes that are adjacent input axes
/// in the same order. Returns the output dims of the merged axes and, for each, the input
/// stride of its innermost input axis: output element g decomposed over `dims` (row-major)
/// and recombined with `strides` is its input element.
fn merge_permutation(dims: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let rank = dims.len();
    let mut strides = vec![1usize; rank];
    for a in (0..rank.saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * dims[a + 1];
    }
    // Output axes (as input axis numbers) that are not of size 1.
    let axes: Vec<usize> = perm.iter().copied().filter(|&a| dims[a] != 1).collect();
    let mut out_dims: Vec<usize> = Vec::new();
    let mut out_strides: Vec<usize> = Vec::new();
    let mut prev: Option<usize> = None;
    for &a in &axes {
        // `a` continues the previous group when it is the next input axis after it, skipping
        // unit axes between them (they contribute nothing to the index).
        let continues = prev.is_some_and(|p| p < a && (p + 1..a).all(|b| dims[b] == 1));
        match (continues, out_dims.last_mut(), out_strides.last_mut()) {
            (true, Some(d), Some(s)) => {
                *d *= dims[a];
                *s = strides[a];
            }
            _ => {
                out_dims.push(dims[a]);
                out_strides.push(strides[a]);
            }
        }
        prev = Some(a);
    }
    (out_dims, out_strides)
}

/// What `attention.cu` is asked to compute.
struct Flash {
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    modalities: usize,
    mask: MaskMode,
    scale: f32,
    /// Sequences in the batch.
    sequences: usize,
    /// The longest query sequence.
    max_lq: usize,
    /// The most rows of Q or K (bounds the kernel's int offsets).
    tokens: usize,
    /// Query rows of every sequence, or −1 to read `cu_q`.
    fixed_lq: i32,
    /// Key rows of every sequence, or −1 to read `cu_k`.
    fixed_lk: i32,
}

/// Device addresses of the attention operands (unused ones point at the output).
struct FlashPtrs {
    q: u64,
    k: u64,
    v: u64,
    cu_q: u64,
    cu_k: u64,
    mod_q: u64,
    mod_k: u64,
    pairs: Option<u64>,
    bias: Option<u64>,
    y: u64,
}

/// Enqueue `attention.cu` for `f`.
fn flash_attention<D: GpuDevice>(be: &D, dt: DType, f: &Flash, p: &FlashPtrs) -> Result<()> {
    let dh = f.head_dim;
    if dh > ATT_DMAX {
        return Err(Error::invalid(format!(
            "attention: head_dim {dh} exceeds the general GPU kernel's limit of {ATT_DMAX}"
        )));
    }
    if f.sequences == 0 || f.max_lq == 0 || f.heads == 0 {
        return Ok(());
    }
    let Some(&dmax) = ATT_BUCKETS.iter().find(|&&b| b >= dh) else {
        return Err(Error::invalid(format!("attention: no kernel bucket for head_dim {dh}")));
    };
    if f.tokens > i32::MAX as usize {
        return Err(Error::invalid(format!("attention: {} rows exceed the kernel's int offsets", f.tokens)));
    }
    let max_shared = be.max_shared_bytes() as usize;
    let Some(bk) = attention_tile(dmax, max_shared) else {
        return Err(Error::invalid(format!(
            "attention: head_dim {dh} (bucket {dmax}) needs {} bytes of shared memory even with \
             {ATT_BK_MIN} keys per tile; {} allows {max_shared}",
            attention_shared(dmax, ATT_BK_MIN),
            be.name()
        )));
    };
    let qblocks = f.max_lq.div_ceil(ATT_BQ);
    let grid_x = f.sequences.checked_mul(qblocks).ok_or_else(|| Error::invalid("attention: too many query blocks"))?;
    let mask = match f.mask {
        MaskMode::Full => 0,
        MaskMode::Intra => 1,
        MaskMode::Cross => 2,
        MaskMode::Pairs => 3,
        MaskMode::Causal => 4,
    };
    let use_mod = matches!(f.mask, MaskMode::Intra | MaskMode::Cross | MaskMode::Pairs) || p.bias.is_some();
    let k = Kernel {
        variant: attention_variant(dmax, bk),
        symbol: format!("attention_flash_{}", ty(dt)),
        grid: [dim(grid_x, GRID_X_MAX, "attention query blocks")?, dim(f.heads, GRID_YZ_MAX, "attention heads")?, 1],
        block: [ATT_WARPS as u32 * be.warp_size(), 1, 1],
        shared_bytes: attention_shared(dmax, bk) as u32,
    };
    let args = [
        Arg::Ptr(p.q),
        Arg::Ptr(p.k),
        Arg::Ptr(p.v),
        Arg::Ptr(p.cu_q),
        Arg::Ptr(p.cu_k),
        Arg::Ptr(p.mod_q),
        Arg::Ptr(p.mod_k),
        Arg::Ptr(p.pairs.unwrap_or(p.y)),
        Arg::Ptr(p.bias.unwrap_or(p.y)),
        Arg::Ptr(p.y),
        int(qblocks, "attention query blocks")?,
        int(f.heads, "heads")?,
        int(f.kv_heads, "kv_heads")?,
        int(dh, "head_dim")?,
        int(f.modalities, "modalities")?,
        Arg::I32(mask),
        flag(p.bias.is_some()),
        flag(use_mod),
        Arg::F32(f.scale),
        Arg::I32(f.fixed_lq),
        Arg::I32(f.fixed_lk),
    ];
    be.enqueue(&k, &args)
}

/// Every module the general path may compile on devices with at least `min_shared` bytes of
/// shared memory per block: each family at its defaults, the GEMM also at its big tile,
/// attention per head-dimension bucket at every key tile from the default down to the one
/// chosen at `min_shared` (only the default where it fits).
pub(crate) fn variants(min_shared: u32) -> Vec<Variant> {
    let mut v: Vec<Variant> =
        [Source::Gemm, Source::Pointwise, Source::Norm, Source::Layout, Source::Conv].into_iter().map(plain).collect();
    v.push(gemm_variant(GEMM_BIG));
    for &d in &ATT_BUCKETS {
        let last = attention_tile(d, min_shared as usize).unwrap_or(ATT_BK_MIN);
        v.extend(attention_tiles(d).take_while(|&bk| bk >= last).map(|bk| attention_variant(d, bk)));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Apply a permutation on the host, directly and through the merged form.
    fn check(dims: &[usize], perm: &[usize]) {
        let n: usize = dims.iter().product();
        let rank = dims.len();
        let mut strides = vec![1usize; rank];
        for a in (0..rank.saturating_sub(1)).rev() {
            strides[a] = strides[a + 1] * dims[a + 1];
        }
        let out_dims: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
        let (md, ms) = merge_permutation(dims, perm);
        assert!(md.len() <= rank);
        for g in 0..n {
            let (mut rem, mut want) = (g, 0);
            for ax in (0..rank).rev() {
                want += (rem % out_dims[ax]) * strides[perm[ax]];
                rem /= out_dims[ax];
            }
            let (mut rem, mut got) = (g, 0);
            for ax in (0..md.len()).rev() {
                got += (rem % md[ax]) * ms[ax];
                rem /= md[ax];
            }
            assert_eq!(got, want, "dims {dims:?} perm {perm:?} at {g}");
        }
    }

    #[test]
    fn merged_permutations_move_the_same_elements() {
        check(&[2, 3, 4], &[0, 2, 1]);
        check(&[2, 3, 4, 5], &[0, 2, 1, 3]);
        check(&[2, 1, 3, 4], &[2, 3, 0, 1]);
        check(&[1, 1, 1], &[2, 0, 1]);
        check(&[], &[]);
        check(&[3, 1, 4, 2], &[1, 0, 2, 3]);
        check(&[2, 3, 1, 4, 5], &[0, 1, 3, 2, 4]);
        check(&[2, 2, 2, 2, 2, 2, 2, 2, 2, 2], &[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
        // an identity permutation collapses to one axis
        assert_eq!(merge_permutation(&[2, 3, 4], &[0, 1, 2]).0, vec![24]);
        // the attention head split [B, S, H, D] → [B, H, S, D] keeps four axes
        assert_eq!(merge_permutation(&[2, 5, 4, 8], &[0, 2, 1, 3]).0.len(), 4);
    }

    #[test]
    fn large_products_take_the_big_gemm_tile() {
        assert_eq!(gemm_tile(64, 64, 1), GEMM_SMALL);
        assert_eq!(gemm_tile(2048, 2048, 1), GEMM_BIG);
        assert_eq!(gemm_tile(128, 128, 300), GEMM_BIG);
        assert_eq!(gemm_variant(GEMM_SMALL), plain(Source::Gemm));
        let (grid, block) = gemm_shape(GEMM_BIG, 129, 1, 70_000, "gemm").unwrap_or_default();
        assert_eq!((grid, block), ([2, 1, 65535], [16, 16, 1]));
    }

    #[test]
    fn attention_buckets_fit_the_shared_memory_of_sm80() {
        assert!(ATT_BUCKETS.iter().all(|&d| attention_shared(d, attention_default_bk(d)) <= 163 * 1024));
        assert_eq!(attention_shared(256, 32), 84_224);
        assert_eq!(attention_shared(128, 64), 78_336);
        // every NVIDIA target (≥ 99 KiB opt-in) takes the default tile: one module per bucket
        let cuda = variants(99 * 1024);
        assert_eq!(cuda.len(), 10);
        for d in ATT_BUCKETS {
            assert_eq!(attention_tile(d, 99 * 1024), Some(attention_default_bk(d)));
            assert!(cuda.contains(&attention_variant(d, attention_default_bk(d))));
        }
    }

    #[test]
    fn attention_takes_a_smaller_key_tile_where_64_kib_of_lds_is_all_there_is() {
        let lds = 64 * 1024;
        assert_eq!(attention_tile(32, lds), Some(64));
        assert_eq!(attention_tile(64, lds), Some(64));
        assert_eq!(attention_tile(128, lds), Some(32));
        assert_eq!(attention_tile(256, lds), Some(16));
        for d in ATT_BUCKETS {
            let bk = attention_tile(d, lds).unwrap_or_default();
            assert!(attention_shared(d, bk) <= lds, "dmax {d} bk {bk}");
            // the tile is the largest that fits
            assert!(bk == attention_default_bk(d) || attention_shared(d, bk * 2) > lds);
        }
        assert_eq!(attention_shared(128, 32), 43_264);
        assert_eq!(attention_shared(256, 16), 50_304);
        // the defaults and the smaller tiles are all listed for 64 KiB devices
        let hip = variants(lds as u32);
        assert_eq!(hip.len(), 12);
        assert!(hip.contains(&attention_variant(128, 64)) && hip.contains(&attention_variant(128, 32)));
        assert!(hip.contains(&attention_variant(256, 32)) && hip.contains(&attention_variant(256, 16)));
        // nothing fits a tiny limit: refused, never a tile that overflows
        assert_eq!(attention_tile(256, 32 * 1024), None);
        assert_eq!(attention_tiles(256).collect::<Vec<_>>(), [32, 16]);
        assert_eq!(attention_tiles(64).collect::<Vec<_>>(), [64, 32, 16]);
    }
}
