//! Maps every op and dtype onto the kernels of `kernels/opencl/`: which program (family and
//! build options), which symbol, which arguments and which launch shape. Shapes were
//! validated by `check_launch`; data-dependent checks (embedding ids, packed-batch offsets,
//! modality ids) read those small inputs back and fail here, before anything is enqueued.

use omnifuse_core::attention::{MaskMode, sequences};
use omnifuse_core::infer::gemm_dims;
use omnifuse_core::op::{Op, PoolKind};
use omnifuse_core::{Backend, DType, Error, Result, Tensor};

use crate::backend::{Arg, GemmVariant, OpenClBackend};
use crate::program::Family;

/// Work-group size of the row reductions in `norm.cl`: 64, or the largest power of two the
/// device allows below it.
fn norm_wg(be: &OpenClBackend) -> usize {
    let cap = be.max_work_group().clamp(1, 64);
    1 << (usize::BITS - 1 - cap.leading_zeros())
}
/// Query rows per work-group of `attention.cl`.
const ATT_BQ: usize = 32;
/// Largest head dimension `attention.cl` takes.
pub const ATT_DMAX: usize = 256;

/// The storage-type build option and symbol suffix of `d`.
fn ty(d: DType) -> (&'static str, &'static str) {
    match d {
        DType::F32 => ("-DT_F32", "f32"),
        DType::F16 => ("-DT_F16", "f16"),
        DType::BF16 => ("-DT_BF16", "bf16"),
        DType::I8 => ("-DT_I8", "i8"),
        DType::I32 => ("-DT_I32", "i32"),
    }
}

/// The raw-element build option and symbol suffix for data movement of `d`.
fn raw(d: DType) -> (&'static str, &'static str) {
    match d.size() {
        1 => ("-DE_SIZE=1", "x8"),
        2 => ("-DE_SIZE=2", "x16"),
        _ => ("-DE_SIZE=4", "x32"),
    }
}

fn prod(d: &[usize]) -> usize {
    d.iter().product()
}

fn u(v: usize) -> Arg {
    Arg::U64(v as u64)
}

fn i(v: usize, what: &str) -> Result<Arg> {
    i32::try_from(v).map(Arg::I32).map_err(|_| Error::invalid(format!("{what} is {v}, beyond the kernel's int range")))
}

fn bytes_as<T: bytemuck::Pod>(b: &[u8]) -> Vec<T> {
    bytemuck::pod_collect_to_vec(b)
}

/// Enqueue `op` on `be`. `check_launch` has run.
pub fn launch(be: &OpenClBackend, op: &Op, inputs: &[&Tensor], out: &Tensor) -> Result<()> {
    let dt = inputs.first().map_or(DType::F32, |t| t.desc.dtype);
    let (topt, tname) = ty(dt);
    let n_out = out.desc.numel();
    let y = be.mem(out)?;
    let x0 = match inputs.first() {
        Some(t) => be.mem(t)?,
        None => y,
    };
    let sym = |name: &str| format!("{name}_{tname}");
    match op {
        Op::Gemm(spec) => {
            let d = gemm_dims(op, &inputs[0].desc, &inputs[1].desc, spec.trans_a, spec.trans_b)?;
            let mut tiles = be.gemm_tiles();
            if dt == DType::I8 && tiles.variant != GemmVariant::Tiled {
                // gemm_vec is float-only: i8 → i32 keeps the tiled kernel at its defaults.
                tiles = be.default_gemm_tiles();
            }
            let opts =
                format!("{topt} {} -DTRANS_A={} -DTRANS_B={}", tiles.options(), spec.trans_a as u8, spec.trans_b as u8);
            let ep = &spec.epilogue;
            let mut extra = inputs[2..].iter();
            let bias = if ep.bias { extra.next().map(|t| be.mem(t)).transpose()? } else { None };
            let res = if ep.residual { extra.next().map(|t| be.mem(t)).transpose()? } else { None };
            let act = ep.activation.code();
            let local = [tiles.tn / tiles.wn, tiles.tm / tiles.wm, 1];
            let global = [d.n.div_ceil(tiles.tn) * local[0], d.m.div_ceil(tiles.tm) * local[1], d.batch];
            let args = [
                Arg::Mem(x0),
                Arg::Mem(be.mem(inputs[1])?),
                Arg::Mem(bias.unwrap_or(y)),
                Arg::Mem(res.unwrap_or(y)),
                Arg::Mem(y),
                u(d.m),
                u(d.n),
                u(d.k),
                u(if d.b_shared { 0 } else { d.k * d.n }),
                Arg::F32(ep.scale),
                Arg::I32(bias.is_some() as i32),
                Arg::I32(act),
                Arg::I32(res.is_some() as i32),
            ];
            be.run(Family::Gemm, &opts, &sym(tiles.kernel()), &args, &global, Some(&local))
        }
        Op::QGemm(spec) => {
            let d = gemm_dims(op, &inputs[0].desc, &inputs[1].desc, false, true)?;
            let rows = d.batch * d.m;
            // A given as floats is quantised per row first, into buffers of this launch (the
            // runtime keeps them alive until the kernels that use them have run).
            let quantised;
            let (a_mem, a_scale_mem, a_scale_rows) = if dt == DType::I8 {
                let s = inputs[3];
                (x0, be.mem(s)?, if s.desc.numel() == 1 { 0 } else { rows })
            } else {
                let q = be.alloc(rows * d.k)?;
                let sc = be.alloc(rows * 4)?;
                quantised = (q, sc);
                let (q, sc) = (be.storage(&quantised.0)?.raw(), be.storage(&quantised.1)?.raw());
                let args = [Arg::Mem(x0), Arg::Mem(q), Arg::Mem(sc), u(rows), u(d.k)];
                be.run_1d(Family::Pointwise, topt, &sym("quantize_rows"), &args, rows)?;
                (q, sc, rows)
            };
            // The tiled kernel at its defaults: gemm_vec is float-only.
            let mut tiles = be.default_gemm_tiles();
            tiles.variant = GemmVariant::Tiled;
            let requant = if spec.requant.is_some() { " -DREQUANT" } else { "" };
            let opts = format!("-DT_I8 {} -DTRANS_A=0 -DTRANS_B=1 -DQGEMM{requant}", tiles.options());
            let ep = &spec.epilogue;
            let mut extra = inputs[3 + usize::from(dt == DType::I8)..].iter();
            let bias = if ep.bias { extra.next().map(|t| be.mem(t)).transpose()? } else { None };
            let res = if ep.residual { extra.next().map(|t| be.mem(t)).transpose()? } else { None };
            let act = ep.activation.code();
            let local = [tiles.tn / tiles.wn, tiles.tm / tiles.wm, 1];
            let global = [d.n.div_ceil(tiles.tn) * local[0], rows.div_ceil(tiles.tm) * local[1], 1];
            let args = [
                Arg::Mem(a_mem),
                Arg::Mem(be.mem(inputs[1])?),
                Arg::Mem(a_scale_mem),
                Arg::Mem(be.mem(inputs[2])?),
                u(a_scale_rows),
                Arg::F32(spec.requant.unwrap_or(1.0)),
                Arg::Mem(bias.unwrap_or(y)),
                Arg::Mem(res.unwrap_or(y)),
                Arg::Mem(y),
                u(rows),
                u(d.n),
                u(d.k),
                u(0),
                Arg::F32(ep.scale),
                Arg::I32(bias.is_some() as i32),
                Arg::I32(act),
                Arg::I32(res.is_some() as i32),
            ];
            be.run(Family::Gemm, &opts, "gemm_tiled_i8", &args, &global, Some(&local))
        }
        Op::LayerNorm { eps } => {
            let n = inputs[0].desc.shape.last();
            if n == 0 {
                return Ok(());
            }
            let rows = n_out / n;
            let wg = norm_wg(be);
            let opts = format!("{topt} -DWG={wg}");
            let args = [
                Arg::Mem(x0),
                Arg::Mem(be.mem(inputs[1])?),
                Arg::Mem(be.mem(inputs[2])?),
                Arg::Mem(y),
                u(n),
                Arg::F32(*eps),
            ];
            be.run(Family::Norm, &opts, &sym("layernorm"), &args, &[rows * wg], Some(&[wg]))
        }
        Op::Softmax => {
            let n = inputs[0].desc.shape.last();
            if n == 0 {
                return Ok(());
            }
            let wg = norm_wg(be);
            let opts = format!("{topt} -DWG={wg}");
            let args = [Arg::Mem(x0), Arg::Mem(y), u(n)];
            be.run(Family::Norm, &opts, &sym("softmax"), &args, &[(n_out / n) * wg], Some(&[wg]))
        }
        Op::Pool { kind, axis } => {
            let d = inputs[0].desc.shape.dims();
            let (outer, len, inner) = (prod(&d[..*axis]), d[*axis], prod(&d[axis + 1..]));
            let k = match kind {
                PoolKind::Mean => 0,
                PoolKind::Max => 1,
            };
            let args = [Arg::Mem(x0), Arg::Mem(y), u(outer), u(len), u(inner), Arg::I32(k)];
            be.run_1d(Family::Norm, &format!("{topt} -DWG={}", norm_wg(be)), &sym("pool"), &args, outer * inner)
        }
        Op::Gelu | Op::Relu => {
            let name = if matches!(op, Op::Gelu) { "gelu" } else { "relu" };
            be.run_1d(Family::Pointwise, topt, &sym(name), &[Arg::Mem(x0), Arg::Mem(y), u(n_out)], n_out)
        }
        Op::Scale { factor } => {
            let args = [Arg::Mem(x0), Arg::Mem(y), u(n_out), Arg::F32(*factor)];
            be.run_1d(Family::Pointwise, topt, &sym("scale"), &args, n_out)
        }
        Op::Add | Op::Mul => {
            let name = if matches!(op, Op::Add) { "add" } else { "mul" };
            let nb = inputs[1].desc.numel();
            let args = [Arg::Mem(x0), Arg::Mem(be.mem(inputs[1])?), Arg::Mem(y), u(n_out), u(nb)];
            be.run_1d(Family::Pointwise, topt, &sym(name), &args, n_out)
        }
        Op::Quantize { scale } => {
            let args = [Arg::Mem(x0), Arg::Mem(y), u(n_out), Arg::F32(*scale)];
            be.run_1d(Family::Pointwise, topt, &sym("quantize"), &args, n_out)
        }
        Op::Dequantize { scale } => {
            let args = [Arg::Mem(x0), Arg::Mem(y), u(n_out), Arg::F32(*scale)];
            be.run_1d(Family::Pointwise, topt, &sym("dequantize"), &args, n_out)
        }
        Op::Embedding => {
            let t = inputs[0].desc.shape.dims();
            let (rows, d) = (t[0], t[1]);
            let ids: Vec<i32> = bytes_as(&be.read(inputs[1])?);
            if let Some((pos, &id)) = ids.iter().enumerate().find(|&(_, &id)| id < 0 || id as usize >= rows) {
                return Err(Error::invalid(format!(
                    "embedding: id {id} at position {pos} is outside the table's 0..{rows}"
                )));
            }
            let (ropt, rname) = raw(dt);
            let args = [Arg::Mem(x0), Arg::Mem(be.mem(inputs[1])?), Arg::Mem(y), u(n_out), u(d)];
            be.run_1d(Family::Layout, ropt, &format!("embedding_{rname}"), &args, n_out)
        }
        Op::Conv1d { bias, stride } => {
            let (xd, wd) = (inputs[0].desc.shape.dims(), inputs[1].desc.shape.dims());
            let b = if *bias { be.mem(inputs[2])? } else { y };
            let args = [
                Arg::Mem(x0),
                Arg::Mem(be.mem(inputs[1])?),
                Arg::Mem(b),
                Arg::Mem(y),
                u(xd[0]),
                u(xd[1]),
                u(xd[2]),
                u(wd[0]),
                u(wd[2]),
                u(*stride),
                Arg::I32(*bias as i32),
            ];
            be.run_1d(Family::Conv, topt, &sym("conv1d"), &args, n_out)
        }
        Op::Im2col { patch } => {
            let d = inputs[0].desc.shape.dims();
            let (ropt, rname) = raw(dt);
            let args = [Arg::Mem(x0), Arg::Mem(y), u(n_out), u(d[1]), u(d[2]), u(d[3]), u(*patch)];
            be.run_1d(Family::Layout, ropt, &format!("im2col_{rname}"), &args, n_out)
        }
        Op::Concat { axis } => {
            let (ropt, rname) = raw(dt);
            let outer = prod(&inputs[0].desc.shape.dims()[..*axis]);
            let total = prod(&out.desc.shape.dims()[*axis..]);
            let mut col = 0;
            for t in inputs {
                let inner = prod(&t.desc.shape.dims()[*axis..]);
                let args = [Arg::Mem(be.mem(t)?), Arg::Mem(y), u(outer), u(inner), u(inner), u(0), u(total), u(col)];
                be.run_1d(Family::Layout, ropt, &format!("copy_rows_{rname}"), &args, outer * inner)?;
                col += inner;
            }
            Ok(())
        }
        Op::Slice { axis, start, end } => {
            let d = inputs[0].desc.shape.dims();
            let (outer, len, inner) = (prod(&d[..*axis]), d[*axis], prod(&d[axis + 1..]));
            let keep = (end - start) * inner;
            let (ropt, rname) = raw(dt);
            let args = [Arg::Mem(x0), Arg::Mem(y), u(outer), u(keep), u(len * inner), u(start * inner), u(keep), u(0)];
            be.run_1d(Family::Layout, ropt, &format!("copy_rows_{rname}"), &args, outer * keep)
        }
        Op::Reshape { .. } => be.copy(x0, y, out.desc.bytes()),
        Op::Permute { perm } => {
            let d = inputs[0].desc.shape.dims();
            let rank = d.len();
            let mut strides = vec![1usize; rank];
            for a in (0..rank.saturating_sub(1)).rev() {
                strides[a] = strides[a + 1] * d[a + 1];
            }
            let mut meta = vec![rank as u64];
            meta.extend(perm.iter().map(|&p| d[p] as u64));
            meta.extend(perm.iter().map(|&p| strides[p] as u64));
            let table = be.constant(bytemuck::cast_slice(&meta))?;
            let (ropt, rname) = raw(dt);
            let args = [Arg::Mem(x0), Arg::Mem(y), u(n_out), Arg::Mem(table.raw())];
            be.run_1d(Family::Layout, ropt, &format!("permute_{rname}"), &args, n_out)
        }
        Op::FusedAttention(spec) => {
            let (qd, kd) = (inputs[0].desc.shape.dims(), inputs[1].desc.shape.dims());
            let cu_q: Vec<i32> = bytes_as(&be.read(inputs[3])?);
            let cu_k: Vec<i32> = bytes_as(&be.read(inputs[4])?);
            let seq_q = sequences("cu_seqlens_q", &cu_q, qd[0])?;
            sequences("cu_seqlens_k", &cu_k, kd[0])?;
            for (what, t) in [("modality_q", inputs[5]), ("modality_k", inputs[6])] {
                let ids: Vec<i8> = bytes_as(&be.read(t)?);
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
            let pairs = if spec.mask == MaskMode::Pairs { extra.next().map(|t| be.mem(t)).transpose()? } else { None };
            let bias = if spec.bias { extra.next().map(|t| be.mem(t)).transpose()? } else { None };
            let flash = Flash {
                heads: spec.heads,
                kv_heads: spec.kv_heads,
                head_dim: qd[2],
                modalities: spec.modalities,
                mask: spec.mask,
                scale: spec.scale.unwrap_or(1.0 / (qd[2] as f32).sqrt()),
            };
            let lens: Vec<usize> = seq_q.iter().map(|s| s.1).collect();
            let mem = FlashMem {
                q: x0,
                k: be.mem(inputs[1])?,
                v: be.mem(inputs[2])?,
                cu_q: be.mem(inputs[3])?,
                cu_k: be.mem(inputs[4])?,
                mod_q: be.mem(inputs[5])?,
                mod_k: be.mem(inputs[6])?,
                pairs,
                bias,
                y,
            };
            flash_attention(be, dt, &flash, &mem, &lens)
        }
        Op::Attention { heads, causal, scale } => {
            let (qd, kd) = (inputs[0].desc.shape.dims(), inputs[1].desc.shape.dims());
            let (batch, sq, sk) = (qd[0], qd[1], kd[1]);
            let head_dim = qd[2] / heads;
            let cu = |len: usize| -> Result<Vec<i32>> {
                (0..=batch)
                    .map(|b| i32::try_from(b * len).map_err(|_| Error::invalid("attention: too many tokens")))
                    .collect()
            };
            let cu_q = be.constant(bytemuck::cast_slice(&cu(sq)?))?;
            let cu_k = be.constant(bytemuck::cast_slice(&cu(sk)?))?;
            let flash = Flash {
                heads: *heads,
                kv_heads: *heads,
                head_dim,
                modalities: 1,
                mask: if *causal { MaskMode::Causal } else { MaskMode::Full },
                scale: scale.unwrap_or(1.0 / (head_dim as f32).sqrt()),
            };
            let mem = FlashMem {
                q: x0,
                k: be.mem(inputs[1])?,
                v: be.mem(inputs[2])?,
                cu_q: cu_q.raw(),
                cu_k: cu_k.raw(),
                mod_q: y,
                mod_k: y,
                pairs: None,
                bias: None,
                y,
            };
            flash_attention(be, dt, &flash, &mem, &vec![sq; batch])
        }
    }
}

struct Flash {
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    modalities: usize,
    mask: MaskMode,
    scale: f32,
}

struct FlashMem {
    q: opencl3::types::cl_mem,
    k: opencl3::types::cl_mem,
    v: opencl3::types::cl_mem,
    cu_q: opencl3::types::cl_mem,
    cu_k: opencl3::types::cl_mem,
    mod_q: opencl3::types::cl_mem,
    mod_k: opencl3::types::cl_mem,
    pairs: Option<opencl3::types::cl_mem>,
    bias: Option<opencl3::types::cl_mem>,
    y: opencl3::types::cl_mem,
}

/// Enqueue `attention.cl` over sequences of `q_lens` query rows.
fn flash_attention(be: &OpenClBackend, dt: DType, f: &Flash, m: &FlashMem, q_lens: &[usize]) -> Result<()> {
    let dh = f.head_dim;
    if dh > ATT_DMAX {
        return Err(Error::invalid(format!(
            "attention: head_dim {dh} exceeds the OpenCL kernel's limit of {ATT_DMAX}"
        )));
    }
    let dmax = dh.next_power_of_two().max(16);
    let bk = (4096 / dmax).clamp(8, 64);
    let mut blocks: Vec<i32> = Vec::new();
    for (s, &lq) in q_lens.iter().enumerate() {
        for qs in (0..lq).step_by(ATT_BQ) {
            blocks.push(i32::try_from(s).map_err(|_| Error::invalid("attention: too many sequences"))?);
            blocks.push(qs as i32);
        }
    }
    if blocks.is_empty() {
        return Ok(());
    }
    let table = be.constant(bytemuck::cast_slice(&blocks))?;
    let (topt, tname) = ty(dt);
    let opts = format!("{topt} -DDMAX={dmax} -DBK={bk} -DBQ={ATT_BQ}");
    let mask = match f.mask {
        MaskMode::Full => 0,
        MaskMode::Intra => 1,
        MaskMode::Cross => 2,
        MaskMode::Pairs => 3,
        MaskMode::Causal => 4,
    };
    let use_mod = matches!(f.mask, MaskMode::Intra | MaskMode::Cross | MaskMode::Pairs) || m.bias.is_some();
    let args = [
        Arg::Mem(m.q),
        Arg::Mem(m.k),
        Arg::Mem(m.v),
        Arg::Mem(m.cu_q),
        Arg::Mem(m.cu_k),
        Arg::Mem(m.mod_q),
        Arg::Mem(m.mod_k),
        Arg::Mem(m.pairs.unwrap_or(m.y)),
        Arg::Mem(m.bias.unwrap_or(m.y)),
        Arg::Mem(m.y),
        Arg::Mem(table.raw()),
        i(f.heads, "heads")?,
        i(f.kv_heads, "kv_heads")?,
        i(dh, "head_dim")?,
        i(f.modalities, "modalities")?,
        Arg::I32(mask),
        Arg::I32(m.bias.is_some() as i32),
        Arg::I32(use_mod as i32),
        Arg::F32(f.scale),
    ];
    let nblocks = blocks.len() / 2;
    be.run(
        Family::Attention,
        &opts,
        &format!("attention_flash_{tname}"),
        &args,
        &[nblocks * ATT_BQ, f.heads],
        Some(&[ATT_BQ, 1]),
    )
}
