//! Well-known peers that the benchmarks run in the same process, at the same shape, on the
//! same threads: the `gemm` crate (faer's) and `matrixmultiply`.

use half::f16;
use omnifuse_core::{Error, Result};

/// A peer implementation of a GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GemmPeer {
    /// The `gemm` crate 0.19 (from faer), multithreaded with rayon.
    Gemm,
    /// `matrixmultiply` 0.3, multithreaded.
    Matrixmultiply,
}

impl GemmPeer {
    /// Name and version for reports.
    pub fn name(self, dtype: &str) -> String {
        match self {
            GemmPeer::Gemm => format!("gemm 0.19 ({dtype})"),
            GemmPeer::Matrixmultiply => format!("matrixmultiply 0.3 ({dtype})"),
        }
    }
}

/// `c = a · b`, row-major f32, through `peer` with `threads` rayon threads.
pub fn gemm_f32(
    peer: GemmPeer,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    threads: usize,
) -> Result<()> {
    if a.len() != m * k || b.len() != k * n || c.len() != m * n {
        return Err(Error::invalid("peer gemm: slice lengths do not match the shape"));
    }
    match peer {
        GemmPeer::Gemm => {
            // SAFETY: the slices were checked to hold m·k, k·n and m·n elements; the strides
            // (row stride = width, column stride = 1) keep every access inside them.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(threads),
                )
            }
        }
        GemmPeer::Matrixmultiply => {
            // SAFETY: as above: lengths checked, row-major strides stay inside the slices.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    k as isize,
                    1,
                    b.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                )
            }
        }
    }
    Ok(())
}

/// `c = a · b`, row-major f16 storage, through the `gemm` crate.
pub fn gemm_f16(m: usize, n: usize, k: usize, a: &[f16], b: &[f16], c: &mut [f16], threads: usize) -> Result<()> {
    if a.len() != m * k || b.len() != k * n || c.len() != m * n {
        return Err(Error::invalid("peer gemm: slice lengths do not match the shape"));
    }
    // SAFETY: lengths checked above; row-major strides keep every access inside the slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            f16::ZERO,
            f16::ONE,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(threads),
        )
    }
    Ok(())
}
