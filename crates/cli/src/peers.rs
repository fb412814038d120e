//! Well-known peers that the benchmarks run in the same process, at the same shape, on the
//! same threads: the `gemm` crate (faer's) and `matrixmultiply`.

use half::f16;
use omnifuse_core::{Error, Result};

/// A peer implementation of a GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GemmPeer {
    /// The `gemm` crate 0.19 (from faer), multithreaded with rayon, built with its AVX-512
    /// kernels (`x86-v4`) so it is compared at its best on CPUs that have them.
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

/// `c = a · b` (row-major, m×k times k×n) through the `gemm` crate in element type `T`.
fn gemm_crate<T: Copy + 'static>(
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
    one: T,
    zero: T,
    threads: usize,
) -> Result<()> {
    check(m, n, k, a.len(), b.len(), c.len())?;
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
            zero,
            one,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(threads),
        )
    }
    Ok(())
}

fn check(m: usize, n: usize, k: usize, a: usize, b: usize, c: usize) -> Result<()> {
    if a != m * k || b != k * n || c != m * n {
        return Err(Error::invalid("peer gemm: slice lengths do not match the shape"));
    }
    Ok(())
}

/// `c = a · b`, row-major f32, through `peer` with `threads` threads.
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
    match peer {
        GemmPeer::Gemm => gemm_crate(m, n, k, a, b, c, 1.0, 0.0, threads),
        GemmPeer::Matrixmultiply => {
            check(m, n, k, a.len(), b.len(), c.len())?;
            // SAFETY: lengths checked above; row-major strides stay inside the slices.
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
            Ok(())
        }
    }
}

/// `c = a · b`, row-major f16 storage, through the `gemm` crate.
pub fn gemm_f16(m: usize, n: usize, k: usize, a: &[f16], b: &[f16], c: &mut [f16], threads: usize) -> Result<()> {
    gemm_crate(m, n, k, a, b, c, f16::ONE, f16::ZERO, threads)
}
