//! OpenCL backend of omnifuse, on the `opencl3` crate.
//!
//! libOpenCL is loaded at run time, so this crate builds with no OpenCL installed; a machine
//! with no loader, no installable client driver or no device gets
//! [`omnifuse_core::Error::DeviceUnavailable`] with the reason. Devices are named `opencl`
//! (the first GPU, else the first device), `opencl:P` (the first device of platform P) and
//! `opencl:P:D`. Kernels are the OpenCL C sources in `kernels/opencl/`, embedded in the
//! binary, built with clBuildProgram at first use and cached on disk as program binaries
//! ([`program`]). One in-order queue per backend: launches return once enqueued,
//! [`omnifuse_core::Backend::synchronize`] waits.

pub mod backend;
pub mod device;
mod error;
mod launch;
pub mod program;
mod storage;
pub mod tune;

pub use backend::{GemmTiles, GemmVariant, OpenClBackend};
pub use device::{DeviceListing, list_devices};
