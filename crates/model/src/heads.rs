//! Layer 3 of the model, the one-pass heads: classification (pooled fused sequence → linear →
//! softmax over the configured labels) and retrieval (L2-normalised embeddings of every input
//! and of the whole request). Generation, which loops, is in [`crate::generate`].

use std::sync::Arc;

use omnifuse_core::graph::ValueId;
use omnifuse_core::op::Activation;
use omnifuse_core::{Backend, Op, PoolKind, Tensor};

use crate::builder::{Builder, to_f32};
use crate::config::Pool;
use crate::error::Result;

/// Build the classification head `name` on `z [T, D]`: probabilities `[1, labels]`.
pub fn classification(b: &mut Builder, z: ValueId, name: &str, pool: Pool) -> Result<ValueId> {
    let d = b.dims(z)?[1];
    let g = match pool {
        Pool::Mean => b.op(Op::Pool { kind: PoolKind::Mean, axis: 0 }, &[z])?,
        Pool::Cls => b.slice(z, 0, 0, 1)?,
    };
    let g = b.reshape(g, &[1, d])?;
    let logits = b.linear(g, &format!("heads.{name}"))?;
    b.op(Op::Softmax, &[logits])
}

/// Build the retrieval head `name` on `z [T, D]`: un-normalised embeddings `[1 + inputs,
/// dim]`, the whole request's first, then one per input (`spans` are each input's rows).
pub fn retrieval(b: &mut Builder, z: ValueId, name: &str, spans: &[(usize, usize)]) -> Result<ValueId> {
    let d = b.dims(z)?[1];
    let mut rows = Vec::with_capacity(spans.len() + 1);
    let all = b.op(Op::Pool { kind: PoolKind::Mean, axis: 0 }, &[z])?;
    rows.push(b.reshape(all, &[1, d])?);
    for &(start, end) in spans {
        let part = b.slice(z, 0, start, end)?;
        let mean = b.op(Op::Pool { kind: PoolKind::Mean, axis: 0 }, &[part])?;
        rows.push(b.reshape(mean, &[1, d])?);
    }
    let pooled = b.op(Op::Concat { axis: 0 }, &rows)?;
    b.linear_ex(pooled, &format!("heads.{name}"), false, Activation::None, None)
}

/// `v / max(‖v‖₂, 1e-12)`, in f64 for the norm.
pub fn normalise(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt().max(1e-12);
    v.iter().map(|&x| (x as f64 / norm) as f32).collect()
}

/// Download retrieval output `[1 + inputs, dim]` as normalised rows.
pub fn retrieval_rows(backend: &Arc<dyn Backend>, t: &Tensor) -> Result<Vec<Vec<f32>>> {
    let dim = t.desc.shape.dims().get(1).copied().unwrap_or(1).max(1);
    Ok(to_f32(backend, t)?.chunks(dim).map(normalise).collect())
}
