//! Maps ops onto the kernels of `kernels/gpu` for AMD GPUs. The kernel sources are the
//! CUDA backend's (built for HIP by the compat header); this layer sizes workgroups from the
//! device's wavefront width. It covers the elementwise ops so far; every other op is refused
//! with [`Error::Unsupported`] naming it, never run wrongly.

pub(crate) mod elementwise;

use omnifuse_core::backend::op_set_support;
use omnifuse_core::op::{Op, OpKind};
use omnifuse_core::{DType, Error, Result, Support, Tensor};

use crate::backend::HipBackend;
use crate::kernel::Variant;

/// Whether the HIP backend runs `kind` with first-input dtype `dtype`.
pub fn supports(kind: OpKind, dtype: DType) -> Support {
    if elementwise::KINDS.contains(&kind) {
        op_set_support(kind, dtype)
    } else {
        Support::No(format!("{kind} has no HIP launch path yet (only {})", kinds_list()))
    }
}

fn kinds_list() -> String {
    elementwise::KINDS.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", ")
}

/// Enqueue `op` (validated by the caller) on `be`.
pub(crate) fn launch(be: &HipBackend, op: &Op, inputs: &[&Tensor], out: &Tensor) -> Result<()> {
    if elementwise::launch(be, op, inputs, out)? {
        return Ok(());
    }
    Err(Error::Unsupported {
        backend: omnifuse_core::Backend::name(be).to_string(),
        op: op.name().into(),
        dtype: inputs.first().map(|t| t.desc.dtype).unwrap_or(DType::F32),
        reason: format!("no HIP launch path yet (only {})", kinds_list()),
    })
}

/// Every module variant the launch paths may compile at run time, sorted, without repeats.
pub fn variants() -> Vec<Variant> {
    let mut v = elementwise::variants();
    v.sort();
    v.dedup();
    v
}
