//! The general path (placeholder until the ported kernels land): refuses every op with a
//! clear reason.

use omnifuse_core::op::Op;
use omnifuse_core::{Error, Result, Tensor};

use crate::backend::CudaBackend;
use crate::kernel::Variant;

/// Refuse: no general kernels yet.
pub(crate) fn launch(be: &CudaBackend, op: &Op, inputs: &[&Tensor], _out: &Tensor) -> Result<()> {
    Err(Error::Unsupported {
        backend: omnifuse_core::Backend::name(be).to_string(),
        op: op.name().into(),
        dtype: inputs.first().map(|t| t.desc.dtype).unwrap_or(omnifuse_core::DType::F32),
        reason: "the general CUDA kernels are not in this build yet".into(),
    })
}

/// No variants yet.
pub(crate) fn variants() -> Vec<Variant> {
    Vec::new()
}
