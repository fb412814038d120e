//! Fast 1-D "same" (optionally strided) convolution as im2col + GEMM: each output position
//! gathers its
//! `width · cin` window (zero-padded at the edges) into a row, and one GEMM with the weights
//! viewed as `[width · cin, cout]` produces every output, bias fused in the epilogue.

use omnifuse_core::op::Epilogue;

use crate::kernels::{Conv1dShape, GemmArgs};

/// Convolution through the fast GEMM.
pub fn conv1d(s: Conv1dShape, x: &[f32], w: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let pad = (s.width - 1) / 2;
    let kdim = s.width * s.cin;
    let lout = s.lout();
    let rows = s.b * lout;
    let mut cols = vec![0.0f32; rows * kdim];
    for b in 0..s.b {
        for t in 0..lout {
            let row = &mut cols[(b * lout + t) * kdim..][..kdim];
            for r in 0..s.width {
                let src = (t * s.stride) as isize + r as isize - pad as isize;
                if src >= 0 && (src as usize) < s.l {
                    let from = (b * s.l + src as usize) * s.cin;
                    row[r * s.cin..(r + 1) * s.cin].copy_from_slice(&x[from..from + s.cin]);
                }
            }
        }
    }
    let g = GemmArgs {
        batch: 1,
        m: rows,
        n: s.cout,
        k: kdim,
        a: &cols,
        trans_a: false,
        b: w,
        trans_b: false,
        b_shared: true,
        epilogue: Epilogue { bias: bias.is_some(), ..Epilogue::default() },
        bias,
        residual: None,
        b_pack: None,
        b_wide: None,
    };
    super::gemm::gemm_f32(&g, out);
}
