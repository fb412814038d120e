//! The micro-kernel interface. A kernel multiplies an `MR × kc` packed panel of A by a
//! `kc × NR` packed panel of B into an `MR × NR` tile of C (row stride `ldc`), either storing
//! or adding to what is there. Packed layouts (see [`super::pack`]): A panel `[p][MR]`,
//! B panel `[p][NR]`, both zero-padded at the matrix edges, so a kernel always runs full
//! size. Each kernel also carries the cache blocking that suits its tile.

/// A register-blocked micro-kernel and the cache blocking around it.
pub trait MicroKernel: Sync {
    /// Rows of the C tile.
    const MR: usize;
    /// Columns of the C tile.
    const NR: usize;
    /// Reduction block: the length of every packed panel, and of one kernel call.
    const KC: usize;
    /// Row block (a multiple of `MR`): the packed A block (`MC × KC`) stays in L2.
    const MC: usize;
    /// Column block: the packed B panel (`KC × NC`), shared by all threads, stays in L3.
    const NC: usize;
    /// Name for reports.
    const NAME: &'static str;

    /// `C[0..MR, 0..NR] (+)= A_panel · B_panel`.
    ///
    /// # Safety
    /// `a` must be valid for `MR·kc` reads, `b` for `kc·NR` reads, and `c` for reads and
    /// writes of `MR` rows of `NR` elements at row stride `ldc`; the CPU must support the
    /// kernel's instruction set.
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool);

    /// Whether [`MicroKernel::run_rows`] computes only the rows asked for (else it computes
    /// all `MR`, and the caller must give it a full tile).
    const ROW_EXACT: bool = false;

    /// `C[0..rows, 0..NR] (+)= A_panel[.., 0..rows] · B_panel` for `rows ≤ MR` (the A panel
    /// is still `MR` wide): the edge row panel of a product, or the few rows of a skinny one,
    /// without the work of the padding rows. Where [`MicroKernel::ROW_EXACT`] is false this
    /// is [`MicroKernel::run`] on all `MR` rows.
    ///
    /// # Safety
    /// As [`MicroKernel::run`], with `c` valid for `rows` rows (`MR` without `ROW_EXACT`).
    unsafe fn run_rows(
        rows: usize,
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        let _ = rows;
        // SAFETY: forwarded contract.
        unsafe { Self::run(kc, a, b, c, ldc, accumulate) }
    }
}
