//! The kernel set a CPU tier implements. Both tiers — reference and fast — implement the
//! same trait over f32 (and i8 for the integer GEMM, bytes for data movement); the launcher
//! in [`crate::launch`] maps every op and dtype onto it, so the two tiers differ only in how
//! they compute, never in what.

use omnifuse_core::AttentionSpec;
use omnifuse_core::Result;
use omnifuse_core::infer::GemmDims;
use omnifuse_core::op::{Epilogue, GemmSpec, PoolKind};

use crate::prepack::PackSlot;

/// A (batched) GEMM over host slices. Element `(i, p)` of `A` in batch `b` is
/// `a[b·m·k + (trans_a ? p·m + i : i·k + p)]`; element `(p, j)` of `B` is
/// `b[(b_shared ? 0 : b·k·n) + (trans_b ? j·k + p : p·n + j)]`; the output is
/// `out[b·m·n + i·n + j]`. The epilogue is `act(scale·acc + bias[j]) + residual[...]`.
#[derive(Clone, Copy, Debug)]
pub struct GemmArgs<'a, T> {
    /// Number of products.
    pub batch: usize,
    /// Output rows.
    pub m: usize,
    /// Output columns.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// `A` data.
    pub a: &'a [T],
    /// `A` is stored `[K, M]`.
    pub trans_a: bool,
    /// `B` data.
    pub b: &'a [T],
    /// `B` is stored `[N, K]`.
    pub trans_b: bool,
    /// One `B` for all batches.
    pub b_shared: bool,
    /// The epilogue.
    pub epilogue: Epilogue,
    /// Bias of length `n` (when the epilogue has one).
    pub bias: Option<&'a [f32]>,
    /// Residual shaped like the output (when the epilogue has one).
    pub residual: Option<&'a [f32]>,
    /// Where `B` is a constant (a weight): its packed forms, kept across calls. The fast tier
    /// packs into it on first use and reads from it later; the reference tier ignores it.
    pub b_pack: Option<&'a PackSlot>,
    /// A weight stored narrower than f32 (f16, bf16), widened only when its packed panels are
    /// built: `b` is then empty and `b_pack` set. Only for tiers whose
    /// [`Kernels::keeps_packed`] is true.
    pub b_wide: Option<Widen<'a>>,
}

/// `B` in f32 on demand (see [`GemmArgs::b_wide`]).
#[derive(Clone, Copy)]
pub struct Widen<'a>(pub &'a (dyn Fn() -> Vec<f32> + Sync));

impl std::fmt::Debug for Widen<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Widen(..)")
    }
}

impl<'a, T> GemmArgs<'a, T> {
    /// Arguments for a GEMM whose shapes `Op::infer` resolved into `d`.
    pub fn new(
        d: &GemmDims,
        spec: &GemmSpec,
        a: &'a [T],
        b: &'a [T],
        bias: Option<&'a [f32]>,
        residual: Option<&'a [f32]>,
    ) -> Self {
        GemmArgs {
            batch: d.batch,
            m: d.m,
            n: d.n,
            k: d.k,
            a,
            trans_a: spec.trans_a,
            b,
            trans_b: spec.trans_b,
            b_shared: d.b_shared,
            epilogue: spec.epilogue,
            bias,
            residual,
            b_pack: None,
            b_wide: None,
        }
    }

    /// Offset of `A`'s batch `b`.
    pub fn a_offset(&self, b: usize) -> usize {
        b * self.m * self.k
    }

    /// Offset of `B`'s batch `b`.
    pub fn b_offset(&self, b: usize) -> usize {
        if self.b_shared { 0 } else { b * self.k * self.n }
    }
}

/// The quantised `A` of an INT8 GEMM: rows of i8 with their scales (one per row, or one for
/// all), after [`crate::quant::quantize_rows`] when the op was given floats.
#[derive(Clone, Copy, Debug)]
pub struct QuantA<'a> {
    /// `[batch·m, k]` row-major.
    pub data: &'a [i8],
    /// `batch·m` scales, or one.
    pub scale: &'a [f32],
}

impl QuantA<'_> {
    /// The scale of global row `row`.
    #[inline]
    pub fn scale_of(&self, row: usize) -> f32 {
        if self.scale.len() == 1 { self.scale[0] } else { self.scale[row] }
    }
}

/// An INT8 GEMM with the dequantising epilogue (see `omnifuse_core::op::QGemmSpec`):
/// `out[b,i,j] = act(acc · a_scale[b·m+i] · b_scale[j] · epilogue.scale + bias[j]) + residual`.
#[derive(Clone, Copy, Debug)]
pub struct QGemmArgs<'a> {
    /// Number of products (`A` batches; `B` is shared).
    pub batch: usize,
    /// Output rows per batch.
    pub m: usize,
    /// Output columns.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// Quantised `A`.
    pub a: QuantA<'a>,
    /// Weights `[n, k]`.
    pub b: &'a [i8],
    /// Per-column (output channel) weight scales, `n` of them.
    pub b_scale: &'a [f32],
    /// The epilogue after dequantisation.
    pub epilogue: Epilogue,
    /// Bias of length `n`.
    pub bias: Option<&'a [f32]>,
    /// Residual shaped like the output.
    pub residual: Option<&'a [f32]>,
    /// Where the weights are a constant: their packed forms, kept across calls (see
    /// [`GemmArgs::b_pack`]).
    pub b_pack: Option<&'a PackSlot>,
}

/// Where an INT8 GEMM writes: f32, or i8 requantised with a step.
#[derive(Debug)]
pub enum QOut<'a> {
    /// Dequantised f32.
    F32(&'a mut [f32]),
    /// Requantised: `clamp(round(v / step), −127, 127)`.
    I8(&'a mut [i8], f32),
}

/// Elementwise binary ops with suffix broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// `a + b`
    Add,
    /// `a · b`
    Mul,
}

/// Arguments of plain attention over padded batches: `q [B, Sq, H·Dh]`, `k`/`v [B, Sk, H·Dh]`.
#[derive(Clone, Copy, Debug)]
pub struct AttentionArgs<'a> {
    /// Batch.
    pub batch: usize,
    /// Query length.
    pub sq: usize,
    /// Key length.
    pub sk: usize,
    /// Heads.
    pub heads: usize,
    /// Head width.
    pub head_dim: usize,
    /// Causal (bottom-right aligned).
    pub causal: bool,
    /// Logit scale.
    pub scale: f32,
    /// Queries.
    pub q: &'a [f32],
    /// Keys.
    pub k: &'a [f32],
    /// Values.
    pub v: &'a [f32],
}

/// Arguments of the fused varlen attention (semantics in `omnifuse_core::attention`), with the
/// packed batch already checked and split into sequences.
#[derive(Clone, Copy, Debug)]
pub struct FusedAttentionArgs<'a> {
    /// Heads, kv heads, modalities, mask, bias flag.
    pub spec: AttentionSpec,
    /// Head width.
    pub head_dim: usize,
    /// Logit scale.
    pub scale: f32,
    /// Queries `[Tq, H, Dh]`.
    pub q: &'a [f32],
    /// Keys `[Tk, Hkv, Dh]`.
    pub k: &'a [f32],
    /// Values `[Tk, Hkv, Dh]`.
    pub v: &'a [f32],
    /// `(first row, length)` of each sequence's queries.
    pub seq_q: &'a [(usize, usize)],
    /// `(first row, length)` of each sequence's keys.
    pub seq_k: &'a [(usize, usize)],
    /// Query modality ids, each in `0..M`.
    pub mod_q: &'a [i8],
    /// Key modality ids, each in `0..M`.
    pub mod_k: &'a [i8],
    /// Allowed-pair matrix `[M, M]` (empty unless the mask is `Pairs`).
    pub pairs: &'a [i8],
    /// Bias `[H, M, M]`.
    pub bias: Option<&'a [f32]>,
}

/// Shape of a 1-D "same" convolution: `x [b, l, cin]`, `w [width, cin, cout]`, output
/// `[b, ceil(l / stride), cout]`.
#[derive(Clone, Copy, Debug)]
pub struct Conv1dShape {
    /// Batch.
    pub b: usize,
    /// Sequence length.
    pub l: usize,
    /// Input channels.
    pub cin: usize,
    /// Kernel width.
    pub width: usize,
    /// Output channels.
    pub cout: usize,
    /// Step between output positions.
    pub stride: usize,
}

impl Conv1dShape {
    /// Output positions per batch row.
    pub fn lout(&self) -> usize {
        self.l.div_ceil(self.stride)
    }
}

/// One CPU tier's kernels. All slices are exactly the sizes the shapes imply; the launcher
/// has validated them.
pub trait Kernels: Sync {
    /// Tier name (`reference`, `fast`).
    fn name(&self) -> &'static str;
    /// f32 GEMM with epilogue.
    fn gemm_f32(&self, g: &GemmArgs<f32>, out: &mut [f32]);
    /// Whether this tier's `gemm_f32` packs a weight once into [`GemmArgs::b_pack`] and can
    /// take a deferred [`GemmArgs::b_wide`] operand.
    fn keeps_packed(&self) -> bool {
        false
    }
    /// INT8 GEMM with the dequantising epilogue fused.
    fn qgemm(&self, g: &QGemmArgs, out: QOut<'_>);
    /// i8 × i8 → i32 GEMM (the epilogue is identity).
    fn gemm_i8(&self, g: &GemmArgs<i8>, out: &mut [i32]);
    /// Layer norm over rows of length `n`.
    fn layernorm(&self, x: &[f32], gamma: &[f32], beta: &[f32], n: usize, eps: f32, out: &mut [f32]);
    /// Softmax over rows of length `n`.
    fn softmax(&self, x: &[f32], n: usize, out: &mut [f32]);
    /// GELU (erf form).
    fn gelu(&self, x: &[f32], out: &mut [f32]);
    /// ReLU.
    fn relu(&self, x: &[f32], out: &mut [f32]);
    /// `x · factor`.
    fn scale(&self, x: &[f32], factor: f32, out: &mut [f32]);
    /// `a op b` with `b` repeated over `a` (its length divides `a`'s).
    fn binary_f32(&self, op: Binary, a: &[f32], b: &[f32], out: &mut [f32]);
    /// Wrapping `a op b` on i32 with the same broadcast.
    fn binary_i32(&self, op: Binary, a: &[i32], b: &[i32], out: &mut [i32]);
    /// Gather rows of `row_bytes` bytes from `table` (`rows` rows) by `ids`.
    fn embedding(&self, table: &[u8], rows: usize, row_bytes: usize, ids: &[i32], out: &mut [u8]) -> Result<()>;
    /// "Same" conv1d with optional bias.
    fn conv1d(&self, s: Conv1dShape, x: &[f32], w: &[f32], bias: Option<&[f32]>, out: &mut [f32]);
    /// Patch extraction on `[b, h, w, c]` elements of `elem` bytes.
    fn im2col(&self, x: &[u8], elem: usize, dims: [usize; 4], patch: usize, out: &mut [u8]);
    /// Reduce the middle axis of `[outer, len, inner]`.
    fn pool(&self, kind: PoolKind, x: &[f32], outer: usize, len: usize, inner: usize, out: &mut [f32]);
    /// Concatenate along an axis: `parts[i]` is `[outer, inner_bytes[i]]` as bytes.
    fn concat(&self, parts: &[&[u8]], outer: usize, inner_bytes: &[usize], out: &mut [u8]);
    /// Slice `[outer, len·inner]` bytes to `[outer, (end−start)·inner]`, `inner` in bytes.
    fn slice(&self, x: &[u8], outer: usize, len: usize, inner: usize, start: usize, end: usize, out: &mut [u8]);
    /// Permute axes of a tensor with `dims` of `elem`-byte elements.
    fn permute(&self, x: &[u8], elem: usize, dims: &[usize], perm: &[usize], out: &mut [u8]);
    /// `clamp(round(x / scale), −127, 127)`.
    fn quantize(&self, x: &[f32], scale: f32, out: &mut [i8]);
    /// `x · scale`.
    fn dequantize(&self, x: &[f32], scale: f32, out: &mut [f32]);
    /// Plain multi-head attention.
    fn attention(&self, a: &AttentionArgs, out: &mut [f32]);
    /// Fused varlen attention with modality masks and pair bias.
    fn fused_attention(&self, a: &FusedAttentionArgs, out: &mut [f32]);
}
