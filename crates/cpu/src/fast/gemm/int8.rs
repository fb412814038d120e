//! i8 × i8 → i32 GEMM (wrapping on overflow, like the reference): B is transposed into i16
//! rows once per batch, each A row widened to i16, and every output is a dot product of two
//! contiguous i16 rows, which the compiler turns into `pmaddwd`-style SIMD under
//! [`crate::fast::math::simd`]. Rows of C in parallel. A VNNI kernel replaces this with the
//! INT8 path.

use rayon::prelude::*;

use crate::fast::math::simd;
use crate::kernels::GemmArgs;

fn dot(a: &[i16], b: &[i16]) -> i32 {
    let mut acc = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail = ca.remainder().iter().zip(cb.remainder()).fold(0i32, |s, (&x, &y)| s.wrapping_add(x as i32 * y as i32));
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] = acc[l].wrapping_add(x[l] as i32 * y[l] as i32);
        }
    }
    acc.iter().fold(tail, |s, &v| s.wrapping_add(v))
}

/// i8 GEMM, i32 output; see [`GemmArgs`] for the layout contract.
pub fn gemm_i8(g: &GemmArgs<i8>, out: &mut [i32]) {
    let (m, n, k) = (g.m, g.n, g.k);
    if out.is_empty() {
        return;
    }
    for batch in 0..g.batch {
        let b = &g.b[g.b_offset(batch)..];
        let a = &g.a[g.a_offset(batch)..];
        // B as n rows of k (i16).
        let mut bt = vec![0i16; n * k];
        for j in 0..n {
            for p in 0..k {
                bt[j * k + p] = (if g.trans_b { b[j * k + p] } else { b[p * n + j] }) as i16;
            }
        }
        let c = &mut out[batch * m * n..(batch + 1) * m * n];
        let row = |(i, crow): (usize, &mut [i32])| {
            let ar: Vec<i16> = (0..k).map(|p| (if g.trans_a { a[p * m + i] } else { a[i * k + p] }) as i16).collect();
            simd(|| {
                for (j, o) in crow.iter_mut().enumerate() {
                    *o = dot(&ar, &bt[j * k..(j + 1) * k]);
                }
            });
        };
        if n == 0 {
            continue;
        }
        if m * n * k >= 1 << 16 {
            c.par_chunks_mut(n).enumerate().for_each(row);
        } else {
            c.chunks_mut(n).enumerate().for_each(row);
        }
    }
}
