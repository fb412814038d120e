//! Maps every op onto the kernels of `kernels/gpu`: the tensor-core paths first (f16 GEMM,
//! INT8 GEMM, f16 attention on sm_80+), each of which may decline a case, then the general
//! path that covers every op × dtype of the core set.

pub(crate) mod attention_tc;
pub(crate) mod gemm_tc;
pub(crate) mod generic;
pub(crate) mod qgemm_tc;

use omnifuse_core::op::Op;
use omnifuse_core::{Result, Tensor};

use crate::backend::CudaBackend;
use crate::kernel::Variant;

/// Enqueue `op` (validated by the caller) on `be`.
pub(crate) fn launch(be: &CudaBackend, op: &Op, inputs: &[&Tensor], out: &Tensor) -> Result<()> {
    let handled = match op {
        Op::Gemm(_) => gemm_tc::launch(be, op, inputs, out)?,
        Op::QGemm(_) => qgemm_tc::launch(be, op, inputs, out)?,
        Op::FusedAttention(_) => attention_tc::launch(be, op, inputs, out)?,
        _ => false,
    };
    if handled { Ok(()) } else { generic::launch(be, op, inputs, out) }
}

/// Every module variant the launch paths may compile at run time, sorted, without repeats:
/// what the CI compile gate compiles.
pub fn variants() -> Vec<Variant> {
    let mut v = [gemm_tc::variants(), qgemm_tc::variants(), attention_tc::variants(), generic::variants()].concat();
    v.sort();
    v.dedup();
    v
}
