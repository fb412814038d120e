//! Core of omnifuse: element types, shapes, the op set, the graph IR with its memory
//! planner and fusion pass, opaque device buffers, and the [`Backend`] trait every device
//! implements (CPU, OpenCL, CUDA, HIP).
//!
//! Nothing here computes: kernels live in the backend crates. What lives here is the
//! contract they share: what each op means ([`op`]), which shapes and dtypes it accepts
//! ([`Op::infer`]), and how a graph is planned and run ([`graph`], [`planner`], [`exec`]).

pub mod attention;
pub mod backend;
pub mod buffer;
pub mod cache;
pub mod dtype;
pub mod error;
pub mod exec;
pub mod fusion;
pub mod graph;
pub mod infer;
pub mod op;
pub mod planner;
pub mod profile;
pub mod quant;
pub mod shape;
pub mod tensor;

pub use attention::{AttentionSpec, MaskMode};
pub use backend::{Backend, DeviceInfo, DeviceKind, Support};
pub use buffer::{Buffer, BufferStorage};
pub use dtype::DType;
pub use error::{Error, Result};
pub use graph::{Graph, NodeId, ValueId};
pub use op::{Activation, Epilogue, GemmSpec, Op, PoolKind, QGemmSpec};
pub use shape::Shape;
pub use tensor::{HostTensor, Tensor, TensorDesc};
