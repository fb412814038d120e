//! Maps every op onto the kernels of `kernels/gpu`: on a device with tensor cores the
//! tensor-core paths first (f16 GEMM, INT8 GEMM, f16 attention on sm_80+), each of which may
//! decline a case, then the general path that covers every op × dtype of the core set on any
//! GPU, CUDA or HIP.

pub(crate) mod attention_tc;
pub(crate) mod gemm_tc;
pub(crate) mod generic;
pub(crate) mod qgemm_tc;

use omnifuse_core::op::Op;
use omnifuse_core::{Result, Tensor};

use crate::device::GpuDevice;
use crate::kernel::Variant;

/// Which devices a list of variants is for: what decides the modules the launch paths may
/// pick, and so what a compile gate must build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Targets {
    /// The tensor-core paths run ([`GpuDevice::tensor_cores`] is `Some`).
    pub tensor_cores: bool,
    /// The smallest per-block shared-memory limit among the targeted devices: kernels whose
    /// tile is chosen by shared memory list every tile from their default down to the one
    /// chosen at this limit.
    pub min_shared_bytes: u32,
}

impl Targets {
    /// NVIDIA sm_80 and later: tensor cores; at least 99 KiB of opt-in shared memory per
    /// block (sm_86 and sm_89; sm_80 has 163 KiB, sm_90 227 KiB).
    pub const CUDA: Targets = Targets { tensor_cores: true, min_shared_bytes: 99 * 1024 };
    /// AMD GPUs: no tensor-core path; 64 KiB of LDS per workgroup (CDNA 1–3 and RDNA).
    pub const HIP: Targets = Targets { tensor_cores: false, min_shared_bytes: 64 * 1024 };
}

/// Enqueue `op` (validated by the caller) on `be`.
pub fn launch<D: GpuDevice>(be: &D, op: &Op, inputs: &[&Tensor], out: &Tensor) -> Result<()> {
    let handled = match (op, be.tensor_cores()) {
        (_, None) => false,
        (Op::Gemm(_), Some(_)) => gemm_tc::launch(be, op, inputs, out)?,
        (Op::QGemm(_), Some(_)) => qgemm_tc::launch(be, op, inputs, out)?,
        (Op::FusedAttention(_), Some(_)) => attention_tc::launch(be, op, inputs, out)?,
        _ => false,
    };
    if handled { Ok(()) } else { generic::launch(be, op, inputs, out) }
}

/// Every module variant the launch paths may compile at run time on devices of `targets`,
/// sorted, without repeats: what a compile gate compiles.
pub fn variants(targets: Targets) -> Vec<Variant> {
    let mut v = generic::variants(targets.min_shared_bytes);
    if targets.tensor_cores {
        v.extend([gemm_tc::variants(), qgemm_tc::variants(), attention_tc::variants()].concat());
    }
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Source;

    #[test]
    fn hip_lists_the_general_path_only_with_tiles_that_fit_64_kib() {
        let hip = variants(Targets::HIP);
        assert!(hip.iter().all(|v| !v.source.tensor_core()));
        assert!(Source::GENERAL.iter().all(|s| hip.iter().any(|v| v.source == *s)));
        // every CUDA general variant is a HIP variant too (devices with more LDS take them)
        let cuda = variants(Targets::CUDA);
        assert!(cuda.iter().filter(|v| !v.source.tensor_core()).all(|v| hip.contains(v)));
        assert_eq!(cuda.iter().filter(|v| v.source.tensor_core()).count(), 16 + 6 + 8);
    }
}
