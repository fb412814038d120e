//! Maps every op and dtype onto a tier's [`Kernels`]: typed views of the buffers' bytes
//! (f16/bf16 widened to f32 and narrowed once on store), sizes from the validated shapes.

use std::borrow::Cow;

use omnifuse_core::attention::{MaskMode, sequences};
use omnifuse_core::infer::gemm_dims;
use omnifuse_core::op::Op;
use omnifuse_core::tensor::{bytes_to_f32, f32_into_half_bytes};
use omnifuse_core::{DType, Error, Result, TensorDesc};

use crate::kernels::{
    AttentionArgs, Binary, Conv1dShape, FusedAttentionArgs, GemmArgs, Kernels, QGemmArgs, QOut, QuantA, Widen,
};
use crate::prepack::PackSlot;
use crate::quant::quantize_rows;

/// An input: its description and its bytes (exactly `desc.bytes()` long).
pub struct In<'a> {
    /// Shape and dtype.
    pub desc: &'a TensorDesc,
    /// The bytes.
    pub bytes: &'a [u8],
    /// The packed forms of the buffer, when it holds a constant.
    pub pack: Option<&'a PackSlot>,
}

/// The values of `x` as f32: borrowed for f32 (when aligned), widened otherwise.
fn f32s<'a>(x: &In<'a>) -> Cow<'a, [f32]> {
    if x.desc.dtype == DType::F32
        && let Ok(s) = bytemuck::try_cast_slice::<u8, f32>(x.bytes)
    {
        return Cow::Borrowed(s);
    }
    Cow::Owned(bytes_to_f32(x.desc.dtype, x.bytes))
}

fn cast<T: bytemuck::Pod>(bytes: &[u8]) -> Cow<'_, [T]> {
    match bytemuck::try_cast_slice::<u8, T>(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(bytes)),
    }
}

/// Compute into an f32 view of `out` and store it in `dtype`.
fn store_f32(dtype: DType, out: &mut [u8], f: impl FnOnce(&mut [f32]) -> Result<()>) -> Result<()> {
    match dtype {
        DType::F32 => match bytemuck::try_cast_slice_mut::<u8, f32>(out) {
            Ok(o) => f(o),
            Err(_) => {
                let mut tmp = vec![0.0f32; out.len() / 4];
                f(&mut tmp)?;
                out.copy_from_slice(bytemuck::cast_slice(&tmp));
                Ok(())
            }
        },
        DType::F16 | DType::BF16 => {
            let mut tmp = vec![0.0f32; out.len() / 2];
            f(&mut tmp)?;
            f32_into_half_bytes(dtype == DType::F16, &tmp, out);
            Ok(())
        }
        other => Err(Error::dtype("store", format!("cannot store f32 results as {other}"))),
    }
}

fn store_i32(out: &mut [u8], f: impl FnOnce(&mut [i32])) {
    match bytemuck::try_cast_slice_mut::<u8, i32>(out) {
        Ok(o) => f(o),
        Err(_) => {
            let mut tmp = vec![0i32; out.len() / 4];
            f(&mut tmp);
            out.copy_from_slice(bytemuck::cast_slice(&tmp));
        }
    }
}

fn prod(d: &[usize]) -> usize {
    d.iter().product()
}

/// Run `op` on `inputs` with tier `k`, writing `out` (described by `out_desc`). Shapes were
/// validated by `Op::infer`.
pub fn launch(k: &dyn Kernels, op: &Op, inputs: &[In<'_>], out_desc: &TensorDesc, out: &mut [u8]) -> Result<()> {
    let od = out_desc.dtype;
    let elem = inputs.first().map_or(1, |x| x.desc.dtype.size());
    match op {
        Op::Gemm(spec) => {
            let d = gemm_dims(op, inputs[0].desc, inputs[1].desc, spec.trans_a, spec.trans_b)?;
            if inputs[0].desc.dtype == DType::I8 {
                let (a, b) = (cast::<i8>(inputs[0].bytes), cast::<i8>(inputs[1].bytes));
                store_i32(out, |o| k.gemm_i8(&GemmArgs::new(&d, spec, &a, &b, None, None), o));
                return Ok(());
            }
            // A weight stored in f16/bf16 is not widened here when the tier keeps packed
            // panels: it is widened once, when its panels are built (`GemmArgs::b_wide`).
            let b_in = &inputs[1];
            let defer = b_in.pack.is_some()
                && b_in.desc.dtype != DType::F32
                && k.keeps_packed()
                && (d.b_shared || d.batch == 1);
            let a = f32s(&inputs[0]);
            let b: Cow<[f32]> = if defer { Cow::Borrowed(&[]) } else { f32s(b_in) };
            let widen = || bytes_to_f32(b_in.desc.dtype, b_in.bytes);
            // Optional operands follow A and B in the order bias, residual.
            let mut extra = inputs[2..].iter();
            let bias = spec.epilogue.bias.then(|| extra.next().map(f32s)).flatten();
            let residual = spec.epilogue.residual.then(|| extra.next().map(f32s)).flatten();
            store_f32(od, out, |o| {
                let g = GemmArgs::new(&d, spec, &a, &b, bias.as_deref(), residual.as_deref());
                let (b_pack, b_wide) = if defer {
                    (b_in.pack, Some(Widen(&widen)))
                } else {
                    // Other f32 weights are packed and kept; narrow ones the tier cannot keep
                    // were widened above for this call.
                    (b_in.pack.filter(|_| b_in.desc.dtype == DType::F32), None)
                };
                k.gemm_f32(&GemmArgs { b_pack, b_wide, ..g }, o);
                Ok(())
            })
        }
        Op::QGemm(spec) => {
            let d = gemm_dims(op, inputs[0].desc, inputs[1].desc, false, true)?;
            let b = cast::<i8>(inputs[1].bytes);
            let b_scale = f32s(&inputs[2]);
            let a_i8 = inputs[0].desc.dtype == DType::I8;
            let (a_data, a_scale): (Cow<[i8]>, Cow<[f32]>) = if a_i8 {
                (cast::<i8>(inputs[0].bytes), f32s(&inputs[3]))
            } else {
                let (q, s) = quantize_rows(&f32s(&inputs[0]), d.batch * d.m, d.k);
                (Cow::Owned(q), Cow::Owned(s))
            };
            // Optional operands follow in the order bias, residual.
            let mut extra = inputs[3 + usize::from(a_i8)..].iter();
            let bias = spec.epilogue.bias.then(|| extra.next().map(f32s)).flatten();
            let residual = spec.epilogue.residual.then(|| extra.next().map(f32s)).flatten();
            let g = QGemmArgs {
                batch: d.batch,
                m: d.m,
                n: d.n,
                k: d.k,
                a: QuantA { data: &a_data, scale: &a_scale },
                b: &b,
                b_scale: &b_scale,
                epilogue: spec.epilogue,
                bias: bias.as_deref(),
                residual: residual.as_deref(),
                b_pack: inputs[1].pack,
            };
            match spec.requant {
                Some(step) => {
                    k.qgemm(&g, QOut::I8(bytemuck::cast_slice_mut(out), step));
                    Ok(())
                }
                None => store_f32(od, out, |o| {
                    k.qgemm(&g, QOut::F32(o));
                    Ok(())
                }),
            }
        }
        Op::LayerNorm { eps } => {
            let (x, g, b) = (f32s(&inputs[0]), f32s(&inputs[1]), f32s(&inputs[2]));
            let n = inputs[0].desc.shape.last();
            store_f32(od, out, |o| {
                k.layernorm(&x, &g, &b, n, *eps, o);
                Ok(())
            })
        }
        Op::Softmax | Op::Gelu | Op::Relu | Op::Scale { .. } => {
            let x = f32s(&inputs[0]);
            let n = inputs[0].desc.shape.last();
            store_f32(od, out, |o| {
                match op {
                    Op::Softmax => k.softmax(&x, n, o),
                    Op::Gelu => k.gelu(&x, o),
                    Op::Relu => k.relu(&x, o),
                    Op::Scale { factor } => k.scale(&x, *factor, o),
                    _ => {}
                }
                Ok(())
            })
        }
        Op::Add | Op::Mul => {
            let bop = if matches!(op, Op::Add) { Binary::Add } else { Binary::Mul };
            if od == DType::I32 {
                let (a, b) = (cast::<i32>(inputs[0].bytes), cast::<i32>(inputs[1].bytes));
                store_i32(out, |o| k.binary_i32(bop, &a, &b, o));
                return Ok(());
            }
            let (a, b) = (f32s(&inputs[0]), f32s(&inputs[1]));
            store_f32(od, out, |o| {
                k.binary_f32(bop, &a, &b, o);
                Ok(())
            })
        }
        Op::Embedding => {
            let t = inputs[0].desc.shape.dims();
            let ids = cast::<i32>(inputs[1].bytes);
            k.embedding(inputs[0].bytes, t[0], t[1] * elem, &ids, out)
        }
        Op::Conv1d { bias, stride } => {
            let (xd, wd) = (inputs[0].desc.shape.dims(), inputs[1].desc.shape.dims());
            let s = Conv1dShape { b: xd[0], l: xd[1], cin: xd[2], width: wd[0], cout: wd[2], stride: *stride };
            let (x, w) = (f32s(&inputs[0]), f32s(&inputs[1]));
            let b = bias.then(|| f32s(&inputs[2]));
            store_f32(od, out, |o| {
                k.conv1d(s, &x, &w, b.as_deref(), o);
                Ok(())
            })
        }
        Op::Im2col { patch } => {
            let d = inputs[0].desc.shape.dims();
            k.im2col(inputs[0].bytes, elem, [d[0], d[1], d[2], d[3]], *patch, out);
            Ok(())
        }
        Op::Pool { kind, axis } => {
            let d = inputs[0].desc.shape.dims();
            let (outer, len, inner) = (prod(&d[..*axis]), d[*axis], prod(&d[axis + 1..]));
            let x = f32s(&inputs[0]);
            store_f32(od, out, |o| {
                k.pool(*kind, &x, outer, len, inner, o);
                Ok(())
            })
        }
        Op::Concat { axis } => {
            let outer = prod(&inputs[0].desc.shape.dims()[..*axis]);
            let parts: Vec<&[u8]> = inputs.iter().map(|x| x.bytes).collect();
            let inner: Vec<usize> = inputs.iter().map(|x| prod(&x.desc.shape.dims()[*axis..]) * elem).collect();
            k.concat(&parts, outer, &inner, out);
            Ok(())
        }
        Op::Slice { axis, start, end } => {
            let d = inputs[0].desc.shape.dims();
            k.slice(inputs[0].bytes, prod(&d[..*axis]), d[*axis], prod(&d[axis + 1..]) * elem, *start, *end, out);
            Ok(())
        }
        Op::Reshape { .. } => {
            out.copy_from_slice(inputs[0].bytes);
            Ok(())
        }
        Op::Permute { perm } => {
            k.permute(inputs[0].bytes, elem, inputs[0].desc.shape.dims(), perm, out);
            Ok(())
        }
        Op::Quantize { scale } => {
            let x = f32s(&inputs[0]);
            k.quantize(&x, *scale, bytemuck::cast_slice_mut(out));
            Ok(())
        }
        Op::Dequantize { scale } => {
            let x = f32s(&inputs[0]);
            store_f32(od, out, |o| {
                k.dequantize(&x, *scale, o);
                Ok(())
            })
        }
        Op::FusedAttention(spec) => {
            let (qd, kd) = (inputs[0].desc.shape.dims(), inputs[1].desc.shape.dims());
            let head_dim = qd[2];
            let seq_q = sequences("cu_seqlens_q", &cast::<i32>(inputs[3].bytes), qd[0])?;
            let seq_k = sequences("cu_seqlens_k", &cast::<i32>(inputs[4].bytes), kd[0])?;
            let (mod_q, mod_k) = (cast::<i8>(inputs[5].bytes), cast::<i8>(inputs[6].bytes));
            for (what, ids) in [("modality_q", &mod_q), ("modality_k", &mod_k)] {
                if let Some((i, &id)) =
                    ids.iter().enumerate().find(|&(_, &id)| id < 0 || id as usize >= spec.modalities)
                {
                    return Err(Error::invalid(format!(
                        "fused_attention: {what}[{i}] is {id}, expected a modality id in 0..{}",
                        spec.modalities
                    )));
                }
            }
            let mut extra = inputs[7..].iter();
            let pairs = if spec.mask == MaskMode::Pairs { extra.next().map(|p| cast::<i8>(p.bytes)) } else { None };
            let bias = if spec.bias { extra.next().map(f32s) } else { None };
            let (q, kk, v) = (f32s(&inputs[0]), f32s(&inputs[1]), f32s(&inputs[2]));
            let a = FusedAttentionArgs {
                spec: *spec,
                head_dim,
                scale: spec.scale.unwrap_or(1.0 / (head_dim as f32).sqrt()),
                q: &q,
                k: &kk,
                v: &v,
                seq_q: &seq_q,
                seq_k: &seq_k,
                mod_q: &mod_q,
                mod_k: &mod_k,
                pairs: pairs.as_deref().unwrap_or(&[]),
                bias: bias.as_deref(),
            };
            store_f32(od, out, |o| {
                k.fused_attention(&a, o);
                Ok(())
            })
        }
        Op::Attention { heads, causal, scale } => {
            let (qd, kd) = (inputs[0].desc.shape.dims(), inputs[1].desc.shape.dims());
            let head_dim = qd[2] / heads;
            let (q, kk, v) = (f32s(&inputs[0]), f32s(&inputs[1]), f32s(&inputs[2]));
            let a = AttentionArgs {
                batch: qd[0],
                sq: qd[1],
                sk: kd[1],
                heads: *heads,
                head_dim,
                causal: *causal,
                scale: scale.unwrap_or(1.0 / (head_dim as f32).sqrt()),
                q: &q,
                k: &kk,
                v: &v,
            };
            store_f32(od, out, |o| {
                k.attention(&a, o);
                Ok(())
            })
        }
    }
}
