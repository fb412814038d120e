//! The fast tier: cache-blocked packed GEMM with AVX-512 / AVX2+FMA micro-kernels chosen at
//! run time (portable fallback elsewhere), multithreaded with rayon, and vectorised norms,
//! softmax and pointwise ops. Checked against [`crate::reference`] by the conformance suite.

mod attention;
mod attention_decode;
mod conv;
mod fused_attention;
pub mod gemm;
mod layout;
pub mod math;
mod norm;
mod pointwise;

use omnifuse_core::Result;
use omnifuse_core::op::PoolKind;

use crate::kernels::{AttentionArgs, Binary, Conv1dShape, FusedAttentionArgs, GemmArgs, Kernels, QGemmArgs, QOut};

/// The fast kernels.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fast;

impl Kernels for Fast {
    fn name(&self) -> &'static str {
        "fast"
    }
    fn gemm_f32(&self, g: &GemmArgs<f32>, out: &mut [f32]) {
        gemm::gemm_f32(g, out)
    }
    fn keeps_packed(&self) -> bool {
        true
    }
    fn qgemm(&self, g: &QGemmArgs, out: QOut<'_>) {
        gemm::qgemm(g, out)
    }
    fn gemm_i8(&self, g: &GemmArgs<i8>, out: &mut [i32]) {
        gemm::gemm_i8(g, out)
    }
    fn layernorm(&self, x: &[f32], gamma: &[f32], beta: &[f32], n: usize, eps: f32, out: &mut [f32]) {
        norm::layernorm(x, gamma, beta, n, eps, out)
    }
    fn softmax(&self, x: &[f32], n: usize, out: &mut [f32]) {
        norm::softmax(x, n, out)
    }
    fn gelu(&self, x: &[f32], out: &mut [f32]) {
        pointwise::gelu(x, out)
    }
    fn relu(&self, x: &[f32], out: &mut [f32]) {
        pointwise::map(x, out, |v| v.max(0.0))
    }
    fn scale(&self, x: &[f32], factor: f32, out: &mut [f32]) {
        pointwise::map(x, out, move |v| v * factor)
    }
    fn binary_f32(&self, op: Binary, a: &[f32], b: &[f32], out: &mut [f32]) {
        pointwise::binary_f32(op, a, b, out)
    }
    fn binary_i32(&self, op: Binary, a: &[i32], b: &[i32], out: &mut [i32]) {
        pointwise::binary_i32(op, a, b, out)
    }
    fn embedding(&self, table: &[u8], rows: usize, row_bytes: usize, ids: &[i32], out: &mut [u8]) -> Result<()> {
        layout::embedding(table, rows, row_bytes, ids, out)
    }
    fn conv1d(&self, s: Conv1dShape, x: &[f32], w: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
        conv::conv1d(s, x, w, bias, out)
    }
    fn im2col(&self, x: &[u8], elem: usize, dims: [usize; 4], patch: usize, out: &mut [u8]) {
        layout::im2col(x, elem, dims, patch, out)
    }
    fn pool(&self, kind: PoolKind, x: &[f32], outer: usize, len: usize, inner: usize, out: &mut [f32]) {
        layout::pool(kind, x, outer, len, inner, out)
    }
    fn concat(&self, parts: &[&[u8]], outer: usize, inner_bytes: &[usize], out: &mut [u8]) {
        layout::concat(parts, outer, inner_bytes, out)
    }
    fn slice(&self, x: &[u8], outer: usize, len: usize, inner: usize, start: usize, end: usize, out: &mut [u8]) {
        layout::slice(x, outer, len, inner, start, end, out)
    }
    fn permute(&self, x: &[u8], elem: usize, dims: &[usize], perm: &[usize], out: &mut [u8]) {
        layout::permute(x, elem, dims, perm, out)
    }
    fn quantize(&self, x: &[f32], scale: f32, out: &mut [i8]) {
        pointwise::quantize(x, scale, out)
    }
    fn dequantize(&self, x: &[f32], scale: f32, out: &mut [f32]) {
        pointwise::map(x, out, move |v| v * scale)
    }
    fn attention(&self, a: &AttentionArgs, out: &mut [f32]) {
        attention::attention(a, out)
    }
    fn fused_attention(&self, a: &FusedAttentionArgs, out: &mut [f32]) {
        fused_attention::fused_attention(a, out)
    }
}
