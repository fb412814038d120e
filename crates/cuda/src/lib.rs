//! CUDA backend of omnifuse, on `cudarc` with dynamic loading.
//!
//! libcuda and libnvrtc are loaded at run time, so this crate builds, and the binary starts,
//! on a machine with no CUDA at all: opening a device there gives
//! [`omnifuse_core::Error::DeviceUnavailable`] with the reason ([`device::summary`] says
//! which library is missing). Devices are named `cuda` and `cuda:N`. Kernels are the sources
//! of `kernels/gpu/` (with the compat header of `kernels/include/`), embedded in the binary,
//! compiled by NVRTC for the device's exact arch at first use and cached on disk by (source,
//! arch, NVRTC version, options). One stream per backend: launches return once enqueued,
//! [`omnifuse_core::Backend::synchronize`] waits.
//!
//! Which kernel each op runs, and with what launch shape, is decided by the launch layer
//! shared with the HIP backend (`omnifuse_gpu`), through its `GpuDevice` trait: the
//! tensor-core paths on sm_80+, the general path for everything else.
//!
//! [`gate`] compiles every module variant to PTX without a GPU: the CI compile gate.

pub mod backend;
pub mod bench;
pub mod device;
pub mod gate;
pub mod nvrtc;
pub mod program;
mod storage;

pub use backend::CudaBackend;
pub use omnifuse_gpu::kernel;

/// Every module variant the launch paths may compile at run time on an NVIDIA GPU (sm_80 and
/// later: the tensor-core paths and the general path), sorted, without repeats: what the CI
/// compile gate compiles.
pub fn variants() -> Vec<kernel::Variant> {
    omnifuse_gpu::variants(omnifuse_gpu::Targets::CUDA)
}
