//! Layer 3 of the model, the one-pass heads: classification (pooled fused sequence → linear →
//! softmax over the configured labels) and retrieval (L2-normalised embeddings of every input
//! and of the whole request). Each builds over a batch of requests at once — the pooled rows
//! of every request gathered into one matrix, so the head is one GEMM — or over one request
//! (a batch of one). Generation, which loops, is in [`crate::generate`].

use std::sync::Arc;

use omnifuse_core::graph::ValueId;
use omnifuse_core::op::Activation;
use omnifuse_core::{Backend, Op, PoolKind, Tensor};

use crate::builder::{Builder, to_f32};
use crate::config::Pool;
use crate::error::{Error, Result};

/// Build the classification head `name` on `z [T, D]`: probabilities `[1, labels]`.
pub fn classification(b: &mut Builder, z: ValueId, name: &str, pool: Pool) -> Result<ValueId> {
    classification_batch(b, &[z], name, pool)
}

/// The classification head `name` over a batch of fused requests `zs[r] [T_r, D]`: each
/// request's pooled row gathered into one `[requests, D]` matrix, one GEMM, a softmax per row:
/// probabilities `[requests, labels]`, one row per request in order.
pub fn classification_batch(b: &mut Builder, zs: &[ValueId], name: &str, pool: Pool) -> Result<ValueId> {
    let mut rows = Vec::with_capacity(zs.len());
    for &z in zs {
        let d = b.dims(z)?[1];
        let g = match pool {
            Pool::Mean => b.op(Op::Pool { kind: PoolKind::Mean, axis: 0 }, &[z])?,
            Pool::Cls => b.slice(z, 0, 0, 1)?,
        };
        rows.push(b.reshape(g, &[1, d])?);
    }
    let pooled = stack(b, &rows)?;
    let logits = b.linear(pooled, &format!("heads.{name}"))?;
    b.op(Op::Softmax, &[logits])
}

/// Build the retrieval head `name` on `z [T, D]`: un-normalised embeddings `[1 + inputs,
/// dim]`, the whole request's first, then one per input (`spans` are each input's rows).
pub fn retrieval(b: &mut Builder, z: ValueId, name: &str, spans: &[(usize, usize)]) -> Result<ValueId> {
    retrieval_batch(b, &[(z, spans)], name)
}

/// The retrieval head `name` over a batch of fused requests, each `(z [T_r, D], spans)`: every
/// request's mean-pooled rows (the whole request's, then one per input) gathered into one
/// matrix, one GEMM: un-normalised embeddings `[Σ (1 + inputs_r), dim]`, request by request.
pub fn retrieval_batch(b: &mut Builder, requests: &[(ValueId, &[(usize, usize)])], name: &str) -> Result<ValueId> {
    let mut rows = Vec::with_capacity(requests.iter().map(|r| 1 + r.1.len()).sum());
    for &(z, spans) in requests {
        let d = b.dims(z)?[1];
        let all = b.op(Op::Pool { kind: PoolKind::Mean, axis: 0 }, &[z])?;
        rows.push(b.reshape(all, &[1, d])?);
        for &(start, end) in spans {
            let part = b.slice(z, 0, start, end)?;
            let mean = b.op(Op::Pool { kind: PoolKind::Mean, axis: 0 }, &[part])?;
            rows.push(b.reshape(mean, &[1, d])?);
        }
    }
    let pooled = stack(b, &rows)?;
    b.linear_ex(pooled, &format!("heads.{name}"), false, Activation::None, None)
}

/// Rows `[1, D]` stacked into `[rows, D]` (one row stays as it is).
fn stack(b: &mut Builder, rows: &[ValueId]) -> Result<ValueId> {
    match rows {
        [] => Err(Error::Request("internal: a head over no rows".into())),
        [one] => Ok(*one),
        _ => b.op(Op::Concat { axis: 0 }, rows),
    }
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
