//! What a launch names: the embedded kernel sources of `kernels/gpu` (one tree for CUDA and
//! HIP, through the compat header), a compile variant (a source and its `-D` defines), a
//! kernel symbol with its launch shape, and its arguments.

/// One file of `kernels/gpu`, embedded in the binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// `gemm.cu`: the general SIMT GEMM (f32, bf16, i8 → i32) and the INT8 epilogue path.
    Gemm,
    /// `gemm_tc.cu`: the f16 tensor-core GEMM.
    GemmTc,
    /// `qgemm_tc.cu`: the INT8 tensor-core GEMM with the fused dequantising epilogue.
    QGemmTc,
    /// `attention.cu`: the general fused attention (every storage type and head size).
    Attention,
    /// `attention_tc.cu`: the f16 tensor-core fused attention.
    AttentionTc,
    /// `pointwise.cu`: elementwise ops, quantisation.
    Pointwise,
    /// `norm.cu`: layer norm, softmax, pooling.
    Norm,
    /// `layout.cu`: data movement (concat, slice, permute, embedding).
    Layout,
    /// `conv.cu`: im2col for the 1-D convolution.
    Conv,
}

/// The compat header every source includes, by the name it includes it.
pub const HEADER: (&str, &str) = ("omnifuse_gpu.h", include_str!("../../../kernels/include/omnifuse_gpu.h"));

impl Source {
    /// Every source.
    pub const ALL: [Source; 9] = [
        Source::Gemm,
        Source::GemmTc,
        Source::QGemmTc,
        Source::Attention,
        Source::AttentionTc,
        Source::Pointwise,
        Source::Norm,
        Source::Layout,
        Source::Conv,
    ];

    /// The general sources: every op × dtype of the core set runs from these on any GPU. The
    /// `_tc` files exist for NVIDIA tensor cores (their matrix-multiply code is CUDA-only).
    pub const GENERAL: [Source; 6] =
        [Source::Gemm, Source::Attention, Source::Pointwise, Source::Norm, Source::Layout, Source::Conv];

    /// True for the tensor-core sources (`*_tc.cu`), which only NVIDIA devices run.
    pub fn tensor_core(self) -> bool {
        matches!(self, Source::GemmTc | Source::QGemmTc | Source::AttentionTc)
    }

    /// The file name under `kernels/gpu`.
    pub fn file(self) -> &'static str {
        match self {
            Source::Gemm => "gemm.cu",
            Source::GemmTc => "gemm_tc.cu",
            Source::QGemmTc => "qgemm_tc.cu",
            Source::Attention => "attention.cu",
            Source::AttentionTc => "attention_tc.cu",
            Source::Pointwise => "pointwise.cu",
            Source::Norm => "norm.cu",
            Source::Layout => "layout.cu",
            Source::Conv => "conv.cu",
        }
    }

    /// The source text.
    pub fn text(self) -> &'static str {
        match self {
            Source::Gemm => include_str!("../../../kernels/gpu/gemm.cu"),
            Source::GemmTc => include_str!("../../../kernels/gpu/gemm_tc.cu"),
            Source::QGemmTc => include_str!("../../../kernels/gpu/qgemm_tc.cu"),
            Source::Attention => include_str!("../../../kernels/gpu/attention.cu"),
            Source::AttentionTc => include_str!("../../../kernels/gpu/attention_tc.cu"),
            Source::Pointwise => include_str!("../../../kernels/gpu/pointwise.cu"),
            Source::Norm => include_str!("../../../kernels/gpu/norm.cu"),
            Source::Layout => include_str!("../../../kernels/gpu/layout.cu"),
            Source::Conv => include_str!("../../../kernels/gpu/conv.cu"),
        }
    }

    /// True for the sources whose kernels must not spill (the CI compile gate fails on a
    /// spill in them): the GEMMs and the attention kernels.
    pub fn spill_free(self) -> bool {
        matches!(self, Source::Gemm | Source::GemmTc | Source::QGemmTc | Source::Attention | Source::AttentionTc)
    }
}

/// A source compiled with a set of `-D` defines: one module at run time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Variant {
    /// The file.
    pub source: Source,
    /// Options such as `-DBM=128`, in a fixed order (they key the cache).
    pub defines: Vec<String>,
}

impl Variant {
    /// A variant of `source` with `defines`.
    pub fn new(source: Source, defines: &[&str]) -> Variant {
        Variant { source, defines: defines.iter().map(|d| d.to_string()).collect() }
    }
}

/// One launch: which symbol of which variant, on which grid.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The module.
    pub variant: Variant,
    /// The `extern "C"` symbol.
    pub symbol: String,
    /// Blocks in x, y, z.
    pub grid: [u32; 3],
    /// Threads per block in x, y, z.
    pub block: [u32; 3],
    /// Dynamic shared memory (LDS) in bytes (above 48 KiB CUDA raises the function attribute).
    pub shared_bytes: u32,
}

/// A kernel argument, passed by value.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    /// A device address.
    Ptr(u64),
    /// `unsigned long long`.
    U64(u64),
    /// `long long`.
    I64(i64),
    /// `int`.
    I32(i32),
    /// `unsigned int`.
    U32(u32),
    /// `float`.
    F32(f32),
}

impl Arg {
    /// The value in an 8-byte slot: the runtimes read the size the parameter has from the
    /// start of the slot (little-endian), which is what a 4-byte value stored first gives.
    pub fn slot(self) -> u64 {
        match self {
            Arg::Ptr(p) | Arg::U64(p) => p,
            Arg::I64(v) => v as u64,
            Arg::I32(v) => v as u32 as u64,
            Arg::U32(v) => v as u64,
            Arg::F32(v) => v.to_bits() as u64,
        }
    }
}

/// Blocks needed to cover `n` items with `per` items per block (at least one).
pub fn blocks(n: usize, per: usize) -> u32 {
    n.div_ceil(per.max(1)).clamp(1, u32::MAX as usize) as u32
}
