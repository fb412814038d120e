//! Packing: copies a block of A or B, transposed or not, into the panel layouts the
//! micro-kernels read sequentially — A as `[panel][p][MR]`, B as `[panel][p][NR]` — with zero
//! padding past the matrix edge, so every kernel call is full size.

/// A read-only matrix view: logical `rows × cols`, stored row-major or (when `trans`) as the
/// row-major transpose.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Logical rows.
    pub rows: usize,
    /// Logical columns.
    pub cols: usize,
    /// Stored transposed (`cols × rows` row-major).
    pub trans: bool,
}

/// Pack one `mr`-row panel: rows `r0..r0+rows` (`rows ≤ mr`), columns `p0..p0+kc` of `a`,
/// into `dst` (`mr·kc` elements, `[p][mr]`, zero rows past the edge).
pub fn pack_a_panel(a: MatRef, r0: usize, rows: usize, p0: usize, kc: usize, mr: usize, dst: &mut [f32]) {
    if rows < mr {
        dst.fill(0.0);
    }
    if a.trans {
        // element (i, p) at data[p·rows + i]: contiguous along i
        for p in 0..kc {
            let src = &a.data[(p0 + p) * a.rows + r0..][..rows];
            dst[p * mr..p * mr + rows].copy_from_slice(src);
        }
    } else {
        for r in 0..rows {
            let src = &a.data[(r0 + r) * a.cols + p0..][..kc];
            for (p, &v) in src.iter().enumerate() {
                dst[p * mr + r] = v;
            }
        }
    }
}

/// Pack one `nr`-column panel: rows `p0..p0+kc`, columns `c0..c0+cols` (`cols ≤ nr`) of `b`,
/// into `dst` (`kc·nr` elements, `[p][nr]`, zero columns past the edge).
pub fn pack_b_panel(b: MatRef, p0: usize, kc: usize, c0: usize, cols: usize, nr: usize, dst: &mut [f32]) {
    if cols < nr {
        dst.fill(0.0);
    }
    if b.trans {
        // element (p, j) at data[j·rows + p]: contiguous along p
        for c in 0..cols {
            let src = &b.data[(c0 + c) * b.rows + p0..][..kc];
            for (p, &v) in src.iter().enumerate() {
                dst[p * nr + c] = v;
            }
        }
    } else {
        for p in 0..kc {
            let src = &b.data[(p0 + p) * b.cols + c0..][..cols];
            dst[p * nr..p * nr + cols].copy_from_slice(src);
        }
    }
}
