//! Reference GEMM: one f64 dot product per output element, then the epilogue.

use omnifuse_core::op::Activation;

use crate::kernels::GemmArgs;

fn a_at<T: Copy>(g: &GemmArgs<T>, b: usize, i: usize, p: usize) -> T {
    let idx = if g.trans_a { p * g.m + i } else { i * g.k + p };
    g.a[g.a_offset(b) + idx]
}

fn b_at<T: Copy>(g: &GemmArgs<T>, b: usize, p: usize, j: usize) -> T {
    let idx = if g.trans_b { j * g.k + p } else { p * g.n + j };
    g.b[g.b_offset(b) + idx]
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
                let mut v = acc * ep.scale as f64;
                if let Some(bias) = g.bias {
                    v += bias[j] as f64;
                }
                v = match ep.activation {
                    Activation::None => v,
                    Activation::Relu => v.max(0.0),
                    Activation::Gelu => 0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2)),
                };
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
