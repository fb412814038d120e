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
//! [`gate`] compiles every module variant to PTX without a GPU: the CI compile gate.

pub mod backend;
pub mod bench;
pub mod device;
pub mod gate;
pub mod kernel;
mod launch;
pub mod nvrtc;
pub mod program;
mod storage;

pub use backend::CudaBackend;
pub use launch::variants;
