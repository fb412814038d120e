//! The CPU backend of omnifuse, in two tiers behind one [`Kernels`] trait:
//!
//! - [`reference`]: plain loops, obviously correct — the oracle for every test in the project;
//! - [`fast`]: cache-blocked packed GEMM with AVX-512 / AVX2+FMA micro-kernels chosen at run
//!   time (portable fallback), multithreaded with rayon, vectorised norms and pointwise ops.
//!
//! [`CpuBackend`] implements [`omnifuse_core::Backend`] over host buffers for either tier.

pub mod backend;
pub mod epilogue;
pub mod fast;
pub mod features;
pub mod kernels;
pub mod launch;
pub mod peak;
pub mod prepack;
pub mod quant;
pub mod reference;
pub mod storage;

pub use backend::{CpuBackend, Tier};
pub use kernels::Kernels;
