//! HIP (AMD GPU) backend of omnifuse.
//!
//! `libamdhip64` and hiprtc are loaded at run time with `libloading` ([`api`], [`hiprtc`]),
//! binding only the entry points used, so this crate builds, and the binary starts, on a
//! machine with no ROCm at all: opening a device there gives
//! [`omnifuse_core::Error::DeviceUnavailable`] with the reason ("HIP: libamdhip64 not found",
//! "no HIP device"). Devices are named `hip` and `hip:N`. Kernels are the sources of
//! `kernels/gpu/` — the same files as the CUDA backend, built for AMD through the compat
//! header of `kernels/include/` — compiled by hiprtc for the device's `gcnArchName` at first
//! use and cached on disk by (source, arch, hiprtc and runtime versions, options). The
//! wavefront width is queried, never assumed. One stream per backend: launches return once
//! enqueued, [`omnifuse_core::Backend::synchronize`] waits.
//!
//! Which kernel each op runs is decided by the launch layer shared with the CUDA backend
//! (`omnifuse_gpu`): HIP has no tensor-core path, so the general kernels run every op × dtype
//! of the core set, with workgroups of whole wavefronts and tiles that fit the device's LDS.

pub mod api;
pub mod backend;
pub mod device;
pub mod hiprtc;
pub mod program;
mod storage;

pub use backend::HipBackend;
pub use omnifuse_gpu::kernel;

use omnifuse_core::op::OpKind;
use omnifuse_core::{DType, Support};

/// Whether the HIP backend runs `kind` with first-input dtype `dtype`: every op × dtype of
/// the core set (the general path of `omnifuse_gpu` covers them all).
pub fn supports(kind: OpKind, dtype: DType) -> Support {
    omnifuse_core::backend::op_set_support(kind, dtype)
}

/// Every module variant the launch paths may compile at run time on an AMD GPU (the general
/// path; attention also at the smaller key tiles a 64 KiB LDS needs), sorted, without
/// repeats: what the HIP compile gate compiles.
pub fn variants() -> Vec<kernel::Variant> {
    omnifuse_gpu::variants(omnifuse_gpu::Targets::HIP)
}
