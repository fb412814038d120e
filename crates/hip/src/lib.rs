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

pub mod api;
pub mod backend;
pub mod device;
pub mod hiprtc;
pub mod kernel;
mod launch;
pub mod program;
mod storage;

pub use backend::HipBackend;
pub use launch::{supports, variants};
