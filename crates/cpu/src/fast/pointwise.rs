//! Fast pointwise ops: activations, broadcast binaries and quantisation, in parallel chunks
//! with loops the compiler vectorises.

use super::math::par_rows;
use crate::epilogue;
use crate::kernels::Binary;

/// Apply `f` elementwise, in parallel chunks.
pub fn map(x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32 + Sync + Send) {
    par_rows(x, out, 1, |xs, os| os.iter_mut().zip(xs).for_each(|(o, &v)| *o = f(v)));
}

/// GELU through the shared epilogue math.
pub fn gelu(x: &[f32], out: &mut [f32]) {
    map(x, out, epilogue::gelu)
}

fn binary<T: Copy + Sync + Send>(a: &[T], b: &[T], out: &mut [T], f: impl Fn(T, T) -> T + Sync + Send) {
    let n = b.len();
    if n == 0 {
        return;
    }
    // Rows of `b`'s length: `b` lines up with each row, so the inner loop is a plain zip.
    par_rows(a, out, n, |xs, os| {
        for (row, o) in xs.chunks_exact(n).zip(os.chunks_exact_mut(n)) {
            for ((o, &x), &y) in o.iter_mut().zip(row).zip(b) {
                *o = f(x, y);
            }
        }
    });
}

/// `a op b` on f32 with broadcast.
pub fn binary_f32(op: Binary, a: &[f32], b: &[f32], out: &mut [f32]) {
    match op {
        Binary::Add => binary(a, b, out, |x, y| x + y),
        Binary::Mul => binary(a, b, out, |x, y| x * y),
    }
}

/// Wrapping `a op b` on i32 with broadcast.
pub fn binary_i32(op: Binary, a: &[i32], b: &[i32], out: &mut [i32]) {
    match op {
        Binary::Add => binary(a, b, out, i32::wrapping_add),
        Binary::Mul => binary(a, b, out, i32::wrapping_mul),
    }
}

/// Symmetric quantisation with one reciprocal-free divide per element (matches the reference
/// rounding exactly: half away from zero, NaN → 0).
pub fn quantize(x: &[f32], scale: f32, out: &mut [i8]) {
    par_rows(x, out, 1, |xs, os| {
        for (o, &v) in os.iter_mut().zip(xs) {
            // `as` saturates and maps NaN to 0.
            *o = (v / scale).round().clamp(-127.0, 127.0) as i8;
        }
    });
}
