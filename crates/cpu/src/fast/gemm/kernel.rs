//! The micro-kernel interface: a kernel multiplies an `MR × kc` packed panel of A by a
//! `kc × NR` packed panel of B into an `MR × NR` tile of C (row stride `ldc`), either storing
//! or adding to what is there. Packed layouts: A panel `[p][MR]`, B panel `[p][NR]`, both
//! zero-padded at the matrix edges, so a kernel always runs full size.

/// A register-blocked micro-kernel.
pub trait MicroKernel: Sync {
    /// Rows of the C tile.
    const MR: usize;
    /// Columns of the C tile.
    const NR: usize;
    /// Name for reports.
    const NAME: &'static str;

    /// `C[0..MR, 0..NR] (+)= A_panel · B_panel`.
    ///
    /// # Safety
    /// `a` must be valid for `MR·kc` reads, `b` for `kc·NR` reads, and `c` for reads and
    /// writes of `MR` rows of `NR` elements at row stride `ldc`; the CPU must support the
    /// kernel's instruction set.
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool);
}
