//! Reference GEMM: one f64 dot product per output element, then the epilogue.

use omnifuse_core::op::Activation;

use crate::kernels::{GemmArgs, QGemmArgs, QOut};
use crate::quant::requantize;

fn a_at<T: Copy>(g: &GemmArgs<T>, b: usize, i: usize, p: usize) -> T {
    let idx = if g.trans_a { p * g.m + i } else { i * g.k + p };
    g.a[g.a_offset(b) + idx]
}

fn b_at<T: Copy>(g: &GemmArgs<T>, b: usize, p: usize, j: usize) -> T {
    let idx = if g.trans_b { j * g.k + p } else { p * g.n + j };
    g.b[g.b_offset(b) + idx]
}

/// `act(v + bias)` in f64, GELU in its exact erf form.
fn bias_act(v: f64, bias: Option<f32>, act: Activation) -> f64 {
    let v = v + bias.map_or(0.0, f64::from);
    match act {
        Activation::None => v,
        Activation::Relu => v.max(0.0),
        Activation::Gelu => 0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2)),
    }
}

/// f32 GEMM with epilogue.
pub fn gemm_f32(g: &GemmArgs<f32>, out: &mut [f32]) {
    let ep = &g.epilogue;
    for b in 0..g.batch {
        for i in 0..g.m {
            for j in 0..g.n {
                let mut acc = 0.0f64;
                for p in 0..g.k {
                    acc += a_at(g, b, i, p) as f64 * b_at(g, b, p, j) as f64;
                }
                let mut v = bias_act(acc * ep.scale as f64, g.bias.map(|b| b[j]), ep.activation);
                let o = (b * g.m + i) * g.n + j;
                if let Some(r) = g.residual {
                    v += r[o] as f64;
                }
                out[o] = v as f32;
            }
        }
    }
}

/// i8 × i8 → i32 GEMM (wrapping on overflow).
pub fn gemm_i8(g: &GemmArgs<i8>, out: &mut [i32]) {
    for b in 0..g.batch {
        for i in 0..g.m {
            for j in 0..g.n {
                let mut acc = 0i32;
                for p in 0..g.k {
                    acc = acc.wrapping_add(a_at(g, b, i, p) as i32 * b_at(g, b, p, j) as i32);
                }
                out[(b * g.m + i) * g.n + j] = acc;
            }
        }
    }
}

/// INT8 GEMM with the dequantising epilogue: an exact i32 dot product (wrapping), then
/// `act(acc · a_scale · b_scale · scale + bias) + residual` in f64, stored as f32 or
/// requantised from that f32.
pub fn qgemm(g: &QGemmArgs, mut out: QOut<'_>) {
    let ep = &g.epilogue;
    for r in 0..g.batch * g.m {
        let a = &g.a.data[r * g.k..(r + 1) * g.k];
        let sa = g.a.scale_of(r) as f64;
        for j in 0..g.n {
            let b = &g.b[j * g.k..(j + 1) * g.k];
            let acc = a.iter().zip(b).fold(0i32, |s, (&x, &y)| s.wrapping_add(x as i32 * y as i32));
            let v = acc as f64 * sa * g.b_scale[j] as f64 * ep.scale as f64;
            let mut v = bias_act(v, g.bias.map(|b| b[j]), ep.activation);
            let o = r * g.n + j;
            if let Some(res) = g.residual {
                v += res[o] as f64;
            }
            match &mut out {
                QOut::F32(dst) => dst[o] = v as f32,
                QOut::I8(dst, step) => dst[o] = requantize(v as f32, *step),
            }
        }
    }
}
