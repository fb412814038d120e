//! CPU emulation of the GPU kernels of `kernels/gpu`.
//!
//! A source of `kernels/gpu` is compiled with the system C++ compiler against
//! [`module::HEADER`], a host stand-in for `kernels/include/omnifuse_gpu.h` (CUDA's builtins as
//! thread-locals and globals, `__syncthreads` and warp shuffles as real barriers between real
//! threads), into a shared object that exports one launcher per kernel. [`module::load`]
//! builds (once, cached on disk) and loads a (source, defines) variant; [`module::Module::launch`]
//! runs a kernel over a grid, block by block, with arguments passed the way `cuLaunchKernel`
//! takes them.
//!
//! [`EmuBackend`] is an [`omnifuse_core::Backend`] on top: host memory stands in for device
//! memory (a device address is the host address of a heap allocation) and every op goes through
//! the launch layer the CUDA and HIP backends use ([`omnifuse_gpu::launch`]), so the conformance
//! suite checks that layer's argument lists, grids and shared-memory sizes and the general-path
//! kernels against the CPU reference tier without a GPU.
//!
//! Inline PTX is not emulated, so the tensor-core sources (`*_tc.cu`) are out of scope.
//! Without a C++ compiler, loading a module fails with
//! [`omnifuse_core::Error::DeviceUnavailable`] saying so ([`compiler::get`]).

pub mod backend;
pub mod compiler;
pub mod module;
pub mod scan;
mod storage;

pub use backend::EmuBackend;
pub use module::{Module, Origin, Param, load};
