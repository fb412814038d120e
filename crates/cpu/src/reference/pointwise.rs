//! Reference pointwise ops: activations, broadcast binaries, quantisation.

use crate::kernels::Binary;

/// Apply `f` elementwise.
pub fn map(x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
}

/// GELU, erf form, evaluated in f64.
pub fn gelu(v: f32) -> f32 {
    let v = v as f64;
    (0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2))) as f32
}

/// `a op b` with `b` repeated along `a`.
pub fn binary_f32(op: Binary, a: &[f32], b: &[f32], out: &mut [f32]) {
    if b.is_empty() {
        return;
    }
    for i in 0..a.len() {
        let r = b[i % b.len()];
        out[i] = match op {
            Binary::Add => a[i] + r,
            Binary::Mul => a[i] * r,
        };
    }
}

/// Wrapping `a op b` on i32 with `b` repeated along `a`.
pub fn binary_i32(op: Binary, a: &[i32], b: &[i32], out: &mut [i32]) {
    if b.is_empty() {
        return;
    }
    for i in 0..a.len() {
        let r = b[i % b.len()];
        out[i] = match op {
            Binary::Add => a[i].wrapping_add(r),
            Binary::Mul => a[i].wrapping_mul(r),
        };
    }
}

/// Symmetric quantisation, rounding half away from zero; NaN maps to 0.
pub fn quantize(x: &[f32], scale: f32, out: &mut [i8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        let q = (v / scale).round();
        *o = if q.is_nan() { 0 } else { q.clamp(-127.0, 127.0) as i8 };
    }
}
