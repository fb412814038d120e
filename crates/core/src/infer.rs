//! Shape and dtype inference: the one place that decides whether inputs fit an op.
//! Every backend calls [`Op::infer`] before launching, so a bad shape is an error that names
//! the op, what was seen and what was expected — never an out-of-bounds access.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::op::{Activation, Op, OpKind};
use crate::shape::Shape;
use crate::tensor::TensorDesc;

fn expect_inputs(op: &Op, inputs: &[&TensorDesc], want: usize) -> Result<()> {
    if inputs.len() != want {
        return Err(Error::invalid(format!("{}: expected {want} input(s), got {}", op.name(), inputs.len())));
    }
    Ok(())
}

fn expect_dtype_in(op: &Op, what: &str, d: DType, allowed: &[DType]) -> Result<()> {
    if !allowed.contains(&d) {
        let names: Vec<_> = allowed.iter().map(|d| d.name()).collect();
        return Err(Error::dtype(op.name(), format!("{what} is {d}, expected one of {}", names.join(", "))));
    }
    Ok(())
}

fn expect_same_dtype(op: &Op, what: &str, got: DType, want: DType) -> Result<()> {
    if got != want {
        return Err(Error::dtype(op.name(), format!("{what} is {got}, expected {want}")));
    }
    Ok(())
}

fn expect_shape(op: &Op, what: &str, got: &Shape, want: &Shape) -> Result<()> {
    if got != want {
        return Err(Error::shape(op.name(), format!("{what} is {got}, expected {want}")));
    }
    Ok(())
}

fn expect_rank(op: &Op, what: &str, s: &Shape, ranks: &[usize]) -> Result<()> {
    if !ranks.contains(&s.rank()) {
        let r: Vec<_> = ranks.iter().map(|r| r.to_string()).collect();
        return Err(Error::shape(
            op.name(),
            format!("{what} has shape {s} (rank {}), expected rank {}", s.rank(), r.join(" or ")),
        ));
    }
    Ok(())
}

fn expect_scale(op: &Op, name: &str, v: f32) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        return Err(Error::invalid(format!("{}: {name} must be positive and finite, got {v}", op.name())));
    }
    Ok(())
}

fn out(shape: impl Into<Shape>, dtype: DType) -> Result<TensorDesc> {
    let desc = TensorDesc::new(shape, dtype);
    desc.shape.numel()?;
    Ok(desc)
}

/// Resolved dimensions of a GEMM, shared by every backend's launcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmDims {
    /// Number of products (1 when unbatched).
    pub batch: usize,
    /// Rows of the output.
    pub m: usize,
    /// Columns of the output.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// `B` is shared by all batches (rank 2).
    pub b_shared: bool,
    /// The output is rank 3.
    pub batched_out: bool,
}

/// Validate a GEMM's `A` and `B` and resolve its dimensions.
pub fn gemm_dims(op: &Op, a: &TensorDesc, b: &TensorDesc, trans_a: bool, trans_b: bool) -> Result<GemmDims> {
    expect_rank(op, "A", &a.shape, &[2, 3])?;
    expect_rank(op, "B", &b.shape, &[2, 3])?;
    let ad = a.shape.dims();
    let bd = b.shape.dims();
    let (batch, am) = if ad.len() == 3 { (ad[0], &ad[1..]) } else { (1, ad) };
    let (b_batch, bm) = if bd.len() == 3 { (Some(bd[0]), &bd[1..]) } else { (None, bd) };
    if let Some(bb) = b_batch
        && (ad.len() != 3 || bb != batch)
    {
        return Err(Error::shape(
            op.name(),
            format!("batched B {} needs A with the same batch, got A {}", b.shape, a.shape),
        ));
    }
    let (m, ka) = if trans_a { (am[1], am[0]) } else { (am[0], am[1]) };
    let (kb, n) = if trans_b { (bm[1], bm[0]) } else { (bm[0], bm[1]) };
    if ka != kb {
        return Err(Error::shape(
            op.name(),
            format!(
                "inner dimensions differ: A {} (trans_a={trans_a}) has K={ka}, B {} (trans_b={trans_b}) has K={kb}",
                a.shape, b.shape
            ),
        ));
    }
    Ok(GemmDims { batch, m, n, k: ka, b_shared: b_batch.is_none(), batched_out: ad.len() == 3 })
}

fn broadcast_rhs(op: &Op, a: &TensorDesc, b: &TensorDesc) -> Result<()> {
    let (ad, bd) = (a.shape.dims(), b.shape.dims());
    if bd.len() > ad.len() || ad[ad.len() - bd.len()..] != *bd {
        return Err(Error::shape(op.name(), format!("rhs {} must equal lhs {} or a suffix of it", b.shape, a.shape)));
    }
    Ok(())
}

impl Op {
    /// Validate `inputs` for this op and return the output's shape and dtype.
    pub fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        let kind = self.kind();
        if let Some(first) = inputs.first() {
            expect_dtype_in(self, "input 0", first.dtype, kind.dtypes())?;
        }
        match self {
            Op::Gemm(spec) => {
                let ep = &spec.epilogue;
                let want = 2 + ep.bias as usize + ep.residual as usize;
                expect_inputs(self, inputs, want)?;
                let (a, b) = (inputs[0], inputs[1]);
                expect_same_dtype(self, "B", b.dtype, a.dtype)?;
                let d = gemm_dims(self, a, b, spec.trans_a, spec.trans_b)?;
                let out_dtype = if a.dtype == DType::I8 { DType::I32 } else { a.dtype };
                if a.dtype == DType::I8 && !ep.is_identity() {
                    return Err(Error::invalid(
                        "gemm: i8 GEMM accumulates to i32 with no epilogue; dequantize the i32 result, \
                         then add bias or activate",
                    ));
                }
                if !ep.scale.is_finite() {
                    return Err(Error::invalid(format!("gemm: epilogue scale must be finite, got {}", ep.scale)));
                }
                let shape = if d.batched_out { Shape::from([d.batch, d.m, d.n]) } else { Shape::from([d.m, d.n]) };
                let mut next = 2;
                if ep.bias {
                    let bias = inputs[next];
                    expect_same_dtype(self, "bias", bias.dtype, out_dtype)?;
                    expect_shape(self, "bias", &bias.shape, &Shape::from([d.n]))?;
                    next += 1;
                }
                if ep.residual {
                    let r = inputs[next];
                    expect_same_dtype(self, "residual", r.dtype, out_dtype)?;
                    expect_shape(self, "residual", &r.shape, &shape)?;
                }
                out(shape, out_dtype)
            }
            Op::QGemm(spec) => {
                let ep = &spec.epilogue;
                let a = inputs.first().copied();
                let a_i8 = a.is_some_and(|a| a.dtype == DType::I8);
                let want = 3 + a_i8 as usize + ep.bias as usize + ep.residual as usize;
                expect_inputs(self, inputs, want)?;
                let (a, b) = (inputs[0], inputs[1]);
                expect_dtype_in(self, "A", a.dtype, OpKind::QGemm.dtypes())?;
                expect_same_dtype(self, "B", b.dtype, DType::I8)?;
                expect_rank(self, "B (the weight, [N, K])", &b.shape, &[2])?;
                let d = gemm_dims(self, a, b, false, true)?;
                if !ep.scale.is_finite() {
                    return Err(Error::invalid(format!("qgemm: epilogue scale must be finite, got {}", ep.scale)));
                }
                if let Some(rq) = spec.requant {
                    expect_scale(self, "requant step", rq)?;
                }
                let shape = if d.batched_out { Shape::from([d.batch, d.m, d.n]) } else { Shape::from([d.m, d.n]) };
                let b_scale = inputs[2];
                expect_same_dtype(self, "b_scale", b_scale.dtype, DType::F32)?;
                expect_shape(self, "b_scale", &b_scale.shape, &Shape::from([d.n]))?;
                let mut next = 3;
                if a_i8 {
                    let s = inputs[next];
                    expect_same_dtype(self, "a_scale", s.dtype, DType::F32)?;
                    let rows = d.batch * d.m;
                    if s.shape != Shape::from([rows]) && s.shape != Shape::from([1]) {
                        return Err(Error::shape(
                            self.name(),
                            format!("a_scale is {}, expected [{rows}] (one per row of A) or [1] (per tensor)", s.shape),
                        ));
                    }
                    next += 1;
                }
                if ep.bias {
                    let bias = inputs[next];
                    expect_same_dtype(self, "bias", bias.dtype, DType::F32)?;
                    expect_shape(self, "bias", &bias.shape, &Shape::from([d.n]))?;
                    next += 1;
                }
                if ep.residual {
                    let r = inputs[next];
                    expect_same_dtype(self, "residual", r.dtype, DType::F32)?;
                    expect_shape(self, "residual", &r.shape, &shape)?;
                }
                out(shape, if spec.requant.is_some() { DType::I8 } else { DType::F32 })
            }
            Op::LayerNorm { eps } => {
                expect_inputs(self, inputs, 3)?;
                let x = inputs[0];
                expect_rank(self, "x", &x.shape, &[1, 2, 3, 4])?;
                let n = Shape::from([x.shape.last()]);
                for (i, what) in [(1, "gamma"), (2, "beta")] {
                    expect_same_dtype(self, what, inputs[i].dtype, x.dtype)?;
                    expect_shape(self, what, &inputs[i].shape, &n)?;
                }
                if !(eps.is_finite() && *eps >= 0.0) {
                    return Err(Error::invalid(format!("layernorm: eps must be finite and ≥ 0, got {eps}")));
                }
                out(x.shape.clone(), x.dtype)
            }
            Op::Softmax | Op::Gelu | Op::Relu | Op::Scale { .. } => {
                expect_inputs(self, inputs, 1)?;
                if let Op::Scale { factor } = self
                    && !factor.is_finite()
                {
                    return Err(Error::invalid(format!("scale: factor must be finite, got {factor}")));
                }
                if matches!(self, Op::Softmax) {
                    expect_rank(self, "x", &inputs[0].shape, &[1, 2, 3, 4])?;
                }
                out(inputs[0].shape.clone(), inputs[0].dtype)
            }
            Op::Add | Op::Mul => {
                expect_inputs(self, inputs, 2)?;
                expect_same_dtype(self, "rhs", inputs[1].dtype, inputs[0].dtype)?;
                broadcast_rhs(self, inputs[0], inputs[1])?;
                out(inputs[0].shape.clone(), inputs[0].dtype)
            }
            Op::Embedding => {
                expect_inputs(self, inputs, 2)?;
                let (table, ids) = (inputs[0], inputs[1]);
                expect_rank(self, "table", &table.shape, &[2])?;
                expect_same_dtype(self, "ids", ids.dtype, DType::I32)?;
                let mut shape = ids.shape.dims().to_vec();
                shape.push(table.shape.dims()[1]);
                out(shape, table.dtype)
            }
            Op::Conv1d { bias, stride } => {
                expect_inputs(self, inputs, 2 + *bias as usize)?;
                if *stride == 0 {
                    return Err(Error::invalid(format!("{}: stride must be positive, got 0", self.name())));
                }
                let (x, w) = (inputs[0], inputs[1]);
                expect_rank(self, "x", &x.shape, &[3])?;
                expect_rank(self, "w", &w.shape, &[3])?;
                expect_same_dtype(self, "w", w.dtype, x.dtype)?;
                let (xd, wd) = (x.shape.dims(), w.shape.dims());
                if wd[0] == 0 {
                    return Err(Error::shape(self.name(), format!("w {} has kernel width 0", w.shape)));
                }
                if wd[1] != xd[2] {
                    return Err(Error::shape(
                        self.name(),
                        format!("w {} has Cin={}, x {} has Cin={}", w.shape, wd[1], x.shape, xd[2]),
                    ));
                }
                if *bias {
                    expect_same_dtype(self, "bias", inputs[2].dtype, x.dtype)?;
                    expect_shape(self, "bias", &inputs[2].shape, &Shape::from([wd[2]]))?;
                }
                out([xd[0], xd[1].div_ceil(*stride), wd[2]], x.dtype)
            }
            Op::Im2col { patch } => {
                expect_inputs(self, inputs, 1)?;
                let x = inputs[0];
                expect_rank(self, "x", &x.shape, &[4])?;
                let d = x.shape.dims();
                let p = *patch;
                if p == 0 || !d[1].is_multiple_of(p) || !d[2].is_multiple_of(p) {
                    return Err(Error::shape(
                        self.name(),
                        format!("image {} [B, H, W, C] must have H and W divisible by patch {p} (> 0)", x.shape),
                    ));
                }
                out([d[0], (d[1] / p) * (d[2] / p), p * p * d[3]], x.dtype)
            }
            Op::Pool { axis, .. } => {
                expect_inputs(self, inputs, 1)?;
                let x = inputs[0];
                let len = x.shape.dim(self.name(), *axis)?;
                if len == 0 {
                    return Err(Error::shape(self.name(), format!("axis {axis} of {} is empty", x.shape)));
                }
                let mut shape = x.shape.dims().to_vec();
                shape.remove(*axis);
                out(shape, x.dtype)
            }
            Op::Concat { axis } => {
                if inputs.len() < 2 {
                    return Err(Error::invalid(format!("concat: expected 2 or more inputs, got {}", inputs.len())));
                }
                let first = inputs[0];
                first.shape.dim(self.name(), *axis)?;
                let mut total = 0usize;
                for (i, t) in inputs.iter().enumerate() {
                    expect_same_dtype(self, &format!("input {i}"), t.dtype, first.dtype)?;
                    let same_rest = t.shape.rank() == first.shape.rank()
                        && t.shape
                            .dims()
                            .iter()
                            .zip(first.shape.dims())
                            .enumerate()
                            .all(|(ax, (a, b))| ax == *axis || a == b);
                    if !same_rest {
                        return Err(Error::shape(
                            self.name(),
                            format!("input {i} is {}, expected {} except along axis {axis}", t.shape, first.shape),
                        ));
                    }
                    total += t.shape.dims()[*axis];
                }
                let mut shape = first.shape.dims().to_vec();
                shape[*axis] = total;
                out(shape, first.dtype)
            }
            Op::Slice { axis, start, end } => {
                expect_inputs(self, inputs, 1)?;
                let x = inputs[0];
                let len = x.shape.dim(self.name(), *axis)?;
                if start > end || *end > len {
                    return Err(Error::shape(
                        self.name(),
                        format!("range {start}..{end} does not fit axis {axis} of {} (length {len})", x.shape),
                    ));
                }
                let mut shape = x.shape.dims().to_vec();
                shape[*axis] = end - start;
                out(shape, x.dtype)
            }
            Op::Permute { perm } => {
                expect_inputs(self, inputs, 1)?;
                let x = inputs[0];
                let mut seen = vec![false; x.shape.rank()];
                let valid = perm.len() == x.shape.rank()
                    && perm.iter().all(|&p| p < seen.len() && !std::mem::replace(&mut seen[p], true));
                if !valid {
                    return Err(Error::shape(
                        self.name(),
                        format!("{perm:?} is not a permutation of the {} axes of {}", x.shape.rank(), x.shape),
                    ));
                }
                let d = x.shape.dims();
                out(perm.iter().map(|&p| d[p]).collect::<Vec<_>>(), x.dtype)
            }
            Op::Reshape { shape } => {
                expect_inputs(self, inputs, 1)?;
                let x = inputs[0];
                let numel: usize = shape.iter().product();
                if numel != x.shape.numel_unchecked() {
                    return Err(Error::shape(
                        self.name(),
                        format!(
                            "{} has {} elements, the target shape {shape:?} has {numel}",
                            x.shape,
                            x.shape.numel_unchecked()
                        ),
                    ));
                }
                out(shape.clone(), x.dtype)
            }
            Op::Quantize { scale } => {
                expect_inputs(self, inputs, 1)?;
                expect_scale(self, "scale", *scale)?;
                out(inputs[0].shape.clone(), DType::I8)
            }
            Op::Dequantize { scale } => {
                expect_inputs(self, inputs, 1)?;
                expect_scale(self, "scale", *scale)?;
                out(inputs[0].shape.clone(), DType::F32)
            }
            Op::Attention { heads, scale, .. } => {
                expect_inputs(self, inputs, 3)?;
                let (q, k, v) = (inputs[0], inputs[1], inputs[2]);
                for (what, t) in [("q", q), ("k", k), ("v", v)] {
                    expect_rank(self, what, &t.shape, &[3])?;
                    expect_same_dtype(self, what, t.dtype, q.dtype)?;
                }
                let (qd, kd) = (q.shape.dims(), k.shape.dims());
                if *heads == 0 || qd[2] % heads != 0 || qd[2] == 0 {
                    return Err(Error::shape(
                        self.name(),
                        format!("q {} last dimension must be a non-zero multiple of heads={heads}", q.shape),
                    ));
                }
                if kd[0] != qd[0] || kd[2] != qd[2] {
                    return Err(Error::shape(
                        self.name(),
                        format!("k {} must be [{}, Sk, {}] to match q {}", k.shape, qd[0], qd[2], q.shape),
                    ));
                }
                expect_shape(self, "v", &v.shape, &k.shape)?;
                if let Some(s) = scale
                    && !s.is_finite()
                {
                    return Err(Error::invalid(format!("attention: scale must be finite, got {s}")));
                }
                out(q.shape.clone(), q.dtype)
            }
            Op::FusedAttention(spec) => infer_fused(self, spec, inputs),
        }
    }

    /// Floating-point operations this op performs on inputs of these shapes (2 per
    /// multiply-add; 0 for pure data movement). Used for GFLOP/s reports.
    pub fn flops(&self, inputs: &[&TensorDesc]) -> f64 {
        match self {
            Op::Gemm(spec) if inputs.len() >= 2 => gemm_dims(self, inputs[0], inputs[1], spec.trans_a, spec.trans_b)
                .map(|d| 2.0 * d.batch as f64 * d.m as f64 * d.n as f64 * d.k as f64)
                .unwrap_or(0.0),
            Op::Attention { .. } if inputs.len() == 3 => {
                let (q, k) = (inputs[0].shape.dims(), inputs[1].shape.dims());
                4.0 * q[0] as f64 * q[1] as f64 * k[1] as f64 * q[2] as f64
            }
            Op::Conv1d { stride, .. } if inputs.len() >= 2 => {
                let (x, w) = (inputs[0].shape.dims(), inputs[1].shape.dims());
                2.0 * (x[0] * x[1].div_ceil((*stride).max(1))) as f64 * (w[0] * w[1] * w[2]) as f64
            }
            _ => inputs.first().map(|t| t.shape.numel_unchecked() as f64).unwrap_or(0.0),
        }
    }
}

fn infer_fused(op: &Op, spec: &crate::attention::AttentionSpec, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
    use crate::attention::MaskMode;
    let want = 7 + usize::from(spec.mask == MaskMode::Pairs) + usize::from(spec.bias);
    expect_inputs(op, inputs, want)?;
    let (q, k, v) = (inputs[0], inputs[1], inputs[2]);
    for (what, t) in [("q", q), ("k", k), ("v", v)] {
        expect_rank(op, what, &t.shape, &[3])?;
        expect_same_dtype(op, what, t.dtype, q.dtype)?;
    }
    let (h, hkv, m) = (spec.heads, spec.kv_heads, spec.modalities);
    if h == 0 || hkv == 0 || h % hkv != 0 {
        return Err(Error::invalid(format!("{}: heads {h} must be a positive multiple of kv_heads {hkv}", op.name())));
    }
    if m == 0 || m > 127 {
        return Err(Error::invalid(format!("{}: modalities must be 1..=127, got {m}", op.name())));
    }
    let (qd, kd) = (q.shape.dims(), k.shape.dims());
    if qd[1] != h || qd[2] == 0 {
        return Err(Error::shape(op.name(), format!("q {} must be [Tq, {h}, Dh] with Dh > 0", q.shape)));
    }
    expect_shape(op, "k", &k.shape, &Shape::from([kd[0], hkv, qd[2]]))?;
    expect_shape(op, "v", &v.shape, &k.shape)?;
    let (cu_q, cu_k) = (inputs[3], inputs[4]);
    expect_same_dtype(op, "cu_seqlens_q", cu_q.dtype, DType::I32)?;
    expect_same_dtype(op, "cu_seqlens_k", cu_k.dtype, DType::I32)?;
    expect_rank(op, "cu_seqlens_q", &cu_q.shape, &[1])?;
    if cu_q.shape.dims()[0] == 0 {
        return Err(Error::shape(op.name(), "cu_seqlens_q is empty, expected batch + 1 entries"));
    }
    expect_shape(op, "cu_seqlens_k", &cu_k.shape, &cu_q.shape)?;
    expect_same_dtype(op, "modality_q", inputs[5].dtype, DType::I8)?;
    expect_same_dtype(op, "modality_k", inputs[6].dtype, DType::I8)?;
    expect_shape(op, "modality_q", &inputs[5].shape, &Shape::from([qd[0]]))?;
    expect_shape(op, "modality_k", &inputs[6].shape, &Shape::from([kd[0]]))?;
    let mut next = 7;
    if spec.mask == MaskMode::Pairs {
        expect_same_dtype(op, "allowed pairs", inputs[next].dtype, DType::I8)?;
        expect_shape(op, "allowed pairs", &inputs[next].shape, &Shape::from([m, m]))?;
        next += 1;
    }
    if spec.bias {
        expect_same_dtype(op, "bias", inputs[next].dtype, DType::F32)?;
        expect_shape(op, "bias", &inputs[next].shape, &Shape::from([h, m, m]))?;
    }
    if let Some(s) = spec.scale.filter(|s| !s.is_finite()) {
        return Err(Error::invalid(format!("{}: scale must be finite, got {s}", op.name())));
    }
    out(q.shape.clone(), q.dtype)
}

/// True when an activation is applied by this op kind (used by fusion).
pub fn activation_of(op: &Op) -> Option<Activation> {
    match op {
        Op::Gelu => Some(Activation::Gelu),
        Op::Relu => Some(Activation::Relu),
        _ => None,
    }
}

/// True when `kind` only moves data and so is defined for every dtype.
pub fn is_data_movement(kind: OpKind) -> bool {
    matches!(kind, OpKind::Im2col | OpKind::Concat | OpKind::Slice | OpKind::Permute | OpKind::Reshape)
}
