//! Portable micro-kernel, 4 × 16 f32, in plain Rust (no intrinsics), for CPUs without AVX2:
//! aarch64 (NEON) and baseline x86-64 (SSE2).
//!
//! Algorithm: a `[[f32; 16]; 4]` accumulator tile; each step of k multiplies the 4 elements of
//! the packed A column into the 16-wide packed B row (`acc[i][j] += a[i]·b[j]`), fixed-size
//! loops the compiler unrolls and vectorises for whatever the build target has (4 × 4 NEON or
//! SSE registers); the tile is stored or added to C once at the end.
//! Limits: full tiles only (edges go through a padded scratch tile); a separate multiply and
//! add per term (Rust never contracts them into an FMA), so half the peak of a fused kernel.

use super::kernel::MicroKernel;

/// The portable kernel.
pub struct Portable;

const MR: usize = 4;
const NR: usize = 16;

impl MicroKernel for Portable {
    const MR: usize = MR;
    const NR: usize = NR;
    const KC: usize = 256;
    const MC: usize = 128;
    const NC: usize = 3072;
    const NAME: &'static str = "portable";

    unsafe fn run(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
        // SAFETY: the caller guarantees MR·kc floats behind `a`, kc·NR behind `b`, and MR rows
        // of NR floats at stride `ldc` behind `c`.
        let (a, b) = unsafe { (std::slice::from_raw_parts(a, MR * kc), std::slice::from_raw_parts(b, kc * NR)) };
        let mut acc = [[0.0f32; NR]; MR];
        for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
            for i in 0..MR {
                for j in 0..NR {
                    acc[i][j] += ap[i] * bp[j];
                }
            }
        }
        for (i, acc_row) in acc.iter().enumerate() {
            // SAFETY: row i of the tile: NR floats at `c + i·ldc`, inside the caller's tile.
            let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), NR) };
            for j in 0..NR {
                row[j] = if accumulate { row[j] + acc_row[j] } else { acc_row[j] };
            }
        }
    }
}
