//! The gemm_tc path (placeholder until its kernels land): declines every launch so the general
//! path runs it.

use omnifuse_core::op::Op;
use omnifuse_core::{Result, Tensor};

use crate::backend::CudaBackend;
use crate::kernel::Variant;

/// Always `Ok(false)`: nothing is handled here yet.
pub(crate) fn launch(_be: &CudaBackend, _op: &Op, _inputs: &[&Tensor], _out: &Tensor) -> Result<bool> {
    Ok(false)
}

/// No variants yet.
pub(crate) fn variants() -> Vec<Variant> {
    Vec::new()
}
