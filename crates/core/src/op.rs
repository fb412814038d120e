//! The op set: every operation a backend may be asked to run, with its exact meaning.
//!
//! Conventions: tensors are dense and row-major; "rows" are all leading dimensions and the
//! last dimension is the feature axis. Floating-point ops on f16/bf16 compute in f32 and
//! round once on store. Shape and dtype rules are in [`crate::infer`].

use std::fmt;

use crate::dtype::DType;

/// A pointwise activation that a GEMM epilogue or a standalone op applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// GELU, exact erf form: `0.5·x·(1 + erf(x/√2))` (what BERT-style models use).
    Gelu,
}

impl Activation {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Activation::None => "none",
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
        }
    }

    /// The code every GPU kernel family (OpenCL, CUDA/HIP) takes for it: 0 none, 1 ReLU,
    /// 2 GELU.
    pub fn code(self) -> i32 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::Gelu => 2,
        }
    }
}

/// What a GEMM does to each output element after the dot product, in one pass:
/// `out = act(scale · (A·B) + bias) + residual`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Epilogue {
    /// Output scale applied to the dot product (1.0 for none).
    pub scale: f32,
    /// A bias vector of length N is an input (after A and B).
    pub bias: bool,
    /// The activation.
    pub activation: Activation,
    /// A residual tensor of the output's shape is an input (after the bias, if any).
    pub residual: bool,
}

impl Default for Epilogue {
    fn default() -> Self {
        Epilogue { scale: 1.0, bias: false, activation: Activation::None, residual: false }
    }
}

impl Epilogue {
    /// True when the epilogue does nothing.
    pub fn is_identity(&self) -> bool {
        self.scale == 1.0 && !self.bias && self.activation == Activation::None && !self.residual
    }
}

/// A (batched) matrix product with a fused epilogue.
///
/// Inputs: `A`, `B`, then `bias` if [`Epilogue::bias`], then `residual` if
/// [`Epilogue::residual`]. `A` is `[M, K]` (or `[K, M]` when `trans_a`), optionally with a
/// leading batch dimension; `B` is `[K, N]` (or `[N, K]` when `trans_b`), either rank 2 (shared
/// by every batch, as weights are) or rank 3 with the same batch. The output is `[M, N]` or
/// `[batch, M, N]`. For i8 inputs the product accumulates in i32 and the output is i32;
/// dequantisation is then a separate op (the fused INT8 epilogue is its own kernel family).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct GemmSpec {
    /// `A` is stored transposed (`[K, M]`).
    pub trans_a: bool,
    /// `B` is stored transposed (`[N, K]`), as PyTorch `Linear` weights are.
    pub trans_b: bool,
    /// The fused epilogue.
    pub epilogue: Epilogue,
}

/// An INT8 GEMM with the dequantising epilogue fused: `i8 × i8 → i32`, then, in one pass over
/// the output, `out = act(acc · a_scale[row] · b_scale[col] · epilogue.scale + bias[col]) +
/// residual`, optionally requantised to i8 with `q = clamp(round(out / requant), −127, 127)`
/// (rounding half away from zero, as [`Op::Quantize`] does).
///
/// Inputs, in order: `A`, `B`, `b_scale`, then `a_scale` when `A` is i8, then `bias` if
/// [`Epilogue::bias`], then `residual` if [`Epilogue::residual`].
/// - `A` is `[M, K]` or `[batch, M, K]` (never transposed). When `A` is i8 it is already
///   quantised and `a_scale` (f32, `[batch·M]` per row, or `[1]` for one per-tensor scale, as
///   static calibration gives) says how. When `A` is f32/f16/bf16 it is quantised per row
///   (per token) on the fly: `a_scale[row] = max|A[row, ·]| / 127` (1 for an all-zero row) and
///   `A_q = clamp(round(A / a_scale[row]), −127, 127)`, computed in f32 exactly as written.
/// - `B` is the weight, i8 `[N, K]` (the layout of a `Linear` weight), symmetric per output
///   channel with `b_scale` f32 `[N]`.
/// - The output is f32 `[M, N]` / `[batch, M, N]`, or i8 of that shape with `requant`.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct QGemmSpec {
    /// The fused epilogue after dequantisation.
    pub epilogue: Epilogue,
    /// Requantise the result to i8 with this step (for a following INT8 layer).
    pub requant: Option<f32>,
}

/// Reduction used by [`Op::Pool`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// Arithmetic mean.
    Mean,
    /// Maximum.
    Max,
}

/// One operation. See each variant for its inputs, output and meaning.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Matrix product with epilogue; see [`GemmSpec`].
    Gemm(GemmSpec),
    /// INT8 matrix product with the dequantising epilogue fused; see [`QGemmSpec`].
    QGemm(QGemmSpec),
    /// Layer normalisation over the last axis: inputs `x [.., N]`, `gamma [N]`, `beta [N]`;
    /// `y = (x − mean) / sqrt(var + eps) · gamma + beta` with the biased variance.
    LayerNorm {
        /// Added to the variance.
        eps: f32,
    },
    /// Softmax over the last axis, max-subtracted.
    Softmax,
    /// GELU (erf form), elementwise.
    Gelu,
    /// ReLU, elementwise.
    Relu,
    /// `a + b`; `b` has `a`'s shape or a suffix of it (broadcast over leading axes, e.g. a
    /// bias `[N]` onto `[M, N]`). i32 addition wraps.
    Add,
    /// `a · b` with the same broadcast rule as [`Op::Add`]. i32 multiplication wraps.
    Mul,
    /// `x · factor`, elementwise.
    Scale {
        /// The factor.
        factor: f32,
    },
    /// Row gather: inputs `table [V, D]`, `ids` (i32, any shape `S`); output `S ++ [D]`.
    /// An id outside `0..V` is an error at launch.
    Embedding,
    /// 1-D convolution along the sequence with "same" padding (TextCNN, audio subsampling):
    /// inputs `x [B, L, Cin]`, `w [W, Cin, Cout]`, then `bias [Cout]` if `bias`; output
    /// `[B, ceil(L / stride), Cout]` where output `t` reads inputs `t·stride + r − (W−1)/2` for
    /// `r` in `0..W`, zero outside `0..L`.
    Conv1d {
        /// A bias input follows the weight.
        bias: bool,
        /// Step between output positions (1 keeps the length).
        stride: usize,
    },
    /// Patch extraction for patch embedding: input `x [B, H, W, C]` (H, W divisible by
    /// `patch`), output `[B, (H/p)·(W/p), p·p·C]`, patches in row-major order, each patch's
    /// elements in (row, column, channel) order. A GEMM with the patch weights follows.
    Im2col {
        /// Patch side in pixels.
        patch: usize,
    },
    /// Mean or max over one axis, which is removed from the shape.
    Pool {
        /// Mean or max.
        kind: PoolKind,
        /// The reduced axis.
        axis: usize,
    },
    /// Concatenation of two or more inputs along `axis`.
    Concat {
        /// The axis.
        axis: usize,
    },
    /// Elements `start..end` along `axis`.
    Slice {
        /// The axis.
        axis: usize,
        /// First index kept.
        start: usize,
        /// One past the last index kept.
        end: usize,
    },
    /// Axis permutation: output axis `i` is input axis `perm[i]`.
    Permute {
        /// The permutation.
        perm: Vec<usize>,
    },
    /// The same elements in the same row-major order under another shape of equal size.
    Reshape {
        /// The new shape.
        shape: Vec<usize>,
    },
    /// Symmetric quantisation to i8: `q = clamp(round(x / scale), −127, 127)`, rounding half
    /// away from zero.
    Quantize {
        /// Positive, finite step.
        scale: f32,
    },
    /// `x · scale` from i8 or i32 to f32.
    Dequantize {
        /// Positive, finite step.
        scale: f32,
    },
    /// Plain (unfused) multi-head attention over padded batches: inputs `q [B, Sq, H·Dh]`,
    /// `k [B, Sk, H·Dh]`, `v [B, Sk, H·Dh]`; output `[B, Sq, H·Dh]`;
    /// `O = softmax(Q·Kᵀ·scale) · V` per head. With `causal`, query `i` sees keys
    /// `j ≤ i + (Sk − Sq)` (bottom-right aligned); a query that sees no key outputs zeros.
    Attention {
        /// Number of heads H (divides the last dimension).
        heads: usize,
        /// Causal mask.
        causal: bool,
        /// Logit scale; `None` means `1/sqrt(Dh)`.
        scale: Option<f32>,
    },
    /// Fused cross-modal attention over packed variable-length sequences with modality-aware
    /// masks and a per-modality-pair bias; semantics in [`crate::attention`]. Inputs: `q
    /// [Tq, H, Dh]`, `k [Tk, Hkv, Dh]`, `v [Tk, Hkv, Dh]`, `cu_seqlens_q` i32 `[B+1]`,
    /// `cu_seqlens_k` i32 `[B+1]`, `modality_q` i8 `[Tq]`, `modality_k` i8 `[Tk]`, then the
    /// allowed-pair matrix i8 `[M, M]` for the `Pairs` mask, then the bias f32 `[H, M, M]` if
    /// asked. Output `[Tq, H, Dh]`.
    FusedAttention(crate::attention::AttentionSpec),
}

/// The kind of an op without its parameters: the unit of `supports` tables and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// [`Op::Gemm`]
    Gemm,
    /// [`Op::QGemm`]
    QGemm,
    /// [`Op::LayerNorm`]
    LayerNorm,
    /// [`Op::Softmax`]
    Softmax,
    /// [`Op::Gelu`]
    Gelu,
    /// [`Op::Relu`]
    Relu,
    /// [`Op::Add`]
    Add,
    /// [`Op::Mul`]
    Mul,
    /// [`Op::Scale`]
    Scale,
    /// [`Op::Embedding`]
    Embedding,
    /// [`Op::Conv1d`]
    Conv1d,
    /// [`Op::Im2col`]
    Im2col,
    /// [`Op::Pool`]
    Pool,
    /// [`Op::Concat`]
    Concat,
    /// [`Op::Slice`]
    Slice,
    /// [`Op::Permute`]
    Permute,
    /// [`Op::Reshape`]
    Reshape,
    /// [`Op::Quantize`]
    Quantize,
    /// [`Op::Dequantize`]
    Dequantize,
    /// [`Op::Attention`]
    Attention,
    /// [`Op::FusedAttention`]
    FusedAttention,
}

const FLOATS: &[DType] = &[DType::F32, DType::F16, DType::BF16];
const ALL: &[DType] = &DType::ALL;

impl OpKind {
    /// Every op kind.
    pub const ALL: [OpKind; 21] = [
        OpKind::Gemm,
        OpKind::QGemm,
        OpKind::LayerNorm,
        OpKind::Softmax,
        OpKind::Gelu,
        OpKind::Relu,
        OpKind::Add,
        OpKind::Mul,
        OpKind::Scale,
        OpKind::Embedding,
        OpKind::Conv1d,
        OpKind::Im2col,
        OpKind::Pool,
        OpKind::Concat,
        OpKind::Slice,
        OpKind::Permute,
        OpKind::Reshape,
        OpKind::Quantize,
        OpKind::Dequantize,
        OpKind::Attention,
        OpKind::FusedAttention,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Gemm => "gemm",
            OpKind::QGemm => "qgemm",
            OpKind::LayerNorm => "layernorm",
            OpKind::Softmax => "softmax",
            OpKind::Gelu => "gelu",
            OpKind::Relu => "relu",
            OpKind::Add => "add",
            OpKind::Mul => "mul",
            OpKind::Scale => "scale",
            OpKind::Embedding => "embedding",
            OpKind::Conv1d => "conv1d",
            OpKind::Im2col => "im2col",
            OpKind::Pool => "pool",
            OpKind::Concat => "concat",
            OpKind::Slice => "slice",
            OpKind::Permute => "permute",
            OpKind::Reshape => "reshape",
            OpKind::Quantize => "quantize",
            OpKind::Dequantize => "dequantize",
            OpKind::Attention => "attention",
            OpKind::FusedAttention => "fused_attention",
        }
    }

    /// Parse a name from [`OpKind::name`].
    pub fn parse(s: &str) -> crate::Result<OpKind> {
        OpKind::ALL.iter().copied().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<_> = OpKind::ALL.iter().map(|k| k.name()).collect();
            crate::Error::invalid(format!("unknown op '{s}': expected one of {}", names.join(", ")))
        })
    }

    /// The dtypes this op is defined for, keyed by its first input's dtype (the table a
    /// backend's `supports` answers against).
    pub fn dtypes(self) -> &'static [DType] {
        match self {
            OpKind::Gemm | OpKind::QGemm => &[DType::F32, DType::F16, DType::BF16, DType::I8],
            OpKind::Add | OpKind::Mul => &[DType::F32, DType::F16, DType::BF16, DType::I32],
            OpKind::Im2col | OpKind::Concat | OpKind::Slice | OpKind::Permute | OpKind::Reshape => ALL,
            OpKind::Dequantize => &[DType::I8, DType::I32],
            _ => FLOATS,
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Op {
    /// The op's kind.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Gemm(_) => OpKind::Gemm,
            Op::QGemm(_) => OpKind::QGemm,
            Op::LayerNorm { .. } => OpKind::LayerNorm,
            Op::Softmax => OpKind::Softmax,
            Op::Gelu => OpKind::Gelu,
            Op::Relu => OpKind::Relu,
            Op::Add => OpKind::Add,
            Op::Mul => OpKind::Mul,
            Op::Scale { .. } => OpKind::Scale,
            Op::Embedding => OpKind::Embedding,
            Op::Conv1d { .. } => OpKind::Conv1d,
            Op::Im2col { .. } => OpKind::Im2col,
            Op::Pool { .. } => OpKind::Pool,
            Op::Concat { .. } => OpKind::Concat,
            Op::Slice { .. } => OpKind::Slice,
            Op::Permute { .. } => OpKind::Permute,
            Op::Reshape { .. } => OpKind::Reshape,
            Op::Quantize { .. } => OpKind::Quantize,
            Op::Dequantize { .. } => OpKind::Dequantize,
            Op::Attention { .. } => OpKind::Attention,
            Op::FusedAttention(_) => OpKind::FusedAttention,
        }
    }

    /// The op's name.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}
