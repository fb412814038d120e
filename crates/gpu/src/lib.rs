//! The launch layer shared by the CUDA and HIP backends of omnifuse.
//!
//! Both backends compile the same sources (`kernels/gpu/*.cu` through the compat header of
//! `kernels/include/`); this crate names them ([`kernel`]), says which module variant, symbol,
//! arguments and launch shape every op × dtype of the core set takes ([`launch`]), and talks to
//! a device only through the small [`GpuDevice`] trait each backend implements. It has no
//! native dependency: nothing here loads a driver or a compiler.
//!
//! Launch shapes follow the device: kernels whose algorithm splits a block into warps are
//! launched with [`GpuDevice::warp_size`] lanes per warp (64 on CDNA), and kernels whose tile
//! is a compile-time define pick the largest tile whose shared memory fits
//! [`GpuDevice::max_shared_bytes`]. The tensor-core paths run only where
//! [`GpuDevice::tensor_cores`] names an arch (NVIDIA); elsewhere the general path runs every op.

pub mod device;
pub mod kernel;
pub mod launch;

pub use device::GpuDevice;
pub use launch::{Targets, launch, variants};
