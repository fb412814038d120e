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
//! Inline PTX is not emulated, so the tensor-core sources (`*_tc.cu`) are out of scope.
//! Without a C++ compiler, loading a module fails with
//! [`omnifuse_core::Error::DeviceUnavailable`] saying so ([`compiler::get`]).

pub mod compiler;
pub mod module;
pub mod scan;

pub use module::{Module, Origin, Param, load};
