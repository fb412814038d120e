//! How a backend's output is judged against the reference: exact for integer outputs,
//! normalised MSE plus NaN/Inf checks for floats, with per-op tolerances in one table.

use omnifuse_core::op::OpKind;
use omnifuse_core::{DType, HostTensor};

/// The largest normalised MSE accepted for `kind` with first-input dtype `dtype`; 0 means
/// the output must match bit for bit. The reference accumulates in f64, so f32 limits
/// allow for f32 accumulation order; f16/bf16 limits allow one rounding of the stored result.
pub fn tolerance(kind: OpKind, dtype: DType) -> f64 {
    use OpKind::*;
    match (kind, dtype) {
        // The INT8 GEMM's i8 products are exact, but its f32 epilogue is not (the reference
        // works in f64), and a requantised output may round one step apart at a boundary.
        (QGemm, _) => 1e-10,
        // Pure data movement and integer arithmetic are exact.
        (Im2col | Concat | Slice | Permute | Embedding, _) => 0.0,
        (_, DType::I8 | DType::I32) => 0.0,
        // Rounding to i8 must agree exactly: both tiers compute round(x / scale) in f32.
        (Quantize, DType::F32) => 0.0,
        (Gemm | Conv1d | Attention | FusedAttention | LayerNorm, DType::F32) => 1e-10,
        (_, DType::F32) => 1e-10,
        (_, DType::F16) => 1e-5,
        (_, DType::BF16) => 1e-4,
    }
}

/// Normalised mean squared error `Σ(got − want)² / max(Σ want², n·1e-12)`: relative to the
/// reference's energy, with a floor so an all-but-zero reference (say, GELU of very negative
/// inputs) is judged by absolute error around 1e-6 instead of dividing by nothing.
pub fn nmse(got: &[f32], want: &[f32]) -> f64 {
    let mut err = 0.0f64;
    let mut energy = 0.0f64;
    for (&g, &w) in got.iter().zip(want) {
        err += (g as f64 - w as f64).powi(2);
        energy += (w as f64).powi(2);
    }
    if err == 0.0 { 0.0 } else { err / energy.max(want.len() as f64 * 1e-12) }
}

/// Compare `got` with `want`; returns the NMSE or why they disagree.
pub fn judge(got: &HostTensor, want: &HostTensor, tol: f64) -> Result<f64, String> {
    if got.desc != want.desc {
        return Err(format!("output is {}, reference is {}", got.desc, want.desc));
    }
    let exact = tol == 0.0;
    if exact {
        if got.bytes() == want.bytes() {
            return Ok(0.0);
        }
        let (g, w) = (got.to_f32(), want.to_f32());
        let i = g.iter().zip(&w).position(|(a, b)| a.to_bits() != b.to_bits()).unwrap_or(0);
        return Err(format!("must match exactly; element {i} is {} but the reference has {}", g[i], w[i]));
    }
    let (g, w) = (got.to_f32(), want.to_f32());
    if !want.desc.dtype.is_float() {
        // Requantised integers: the float value before rounding may sit on a rounding
        // boundary, so a few elements may land one step apart; nothing may be further.
        let apart: Vec<usize> = (0..w.len()).filter(|&i| g[i] != w[i]).collect();
        if let Some(&i) = apart.iter().find(|&&i| (g[i] - w[i]).abs() > 1.0) {
            return Err(format!("element {i} is {} but the reference has {}", g[i], w[i]));
        }
        if apart.len() > 1 + w.len() / 100 {
            return Err(format!("{} of {} elements are one step from the reference", apart.len(), w.len()));
        }
        return Ok(apart.len() as f64 / w.len().max(1) as f64);
    }
    if let Some(i) = (0..w.len()).find(|&i| w[i].is_finite() && !g[i].is_finite()) {
        return Err(format!("element {i} is {} where the reference has {}", g[i], w[i]));
    }
    if let Some(i) = (0..w.len()).find(|&i| w[i].is_nan() != g[i].is_nan()) {
        return Err(format!("element {i} is {} where the reference has {}", g[i], w[i]));
    }
    let e = nmse(&g, &w);
    if e <= tol { Ok(e) } else { Err(format!("NMSE {e:.3e} exceeds the tolerance {tol:.1e}")) }
}
