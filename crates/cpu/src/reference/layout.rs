//! Reference data movement and reductions: embedding gather, im2col, pooling, concat, slice,
//! permute. Element by element, through explicit index arithmetic.

use omnifuse_core::op::PoolKind;
use omnifuse_core::{Error, Result};

/// Gather rows by id; an id outside `0..rows` is an error naming it.
pub fn embedding(table: &[u8], rows: usize, row_bytes: usize, ids: &[i32], out: &mut [u8]) -> Result<()> {
    for (i, &id) in ids.iter().enumerate() {
        if id < 0 || id as usize >= rows {
            return Err(Error::invalid(format!("embedding: id {id} at position {i} is outside the table's 0..{rows}")));
        }
        for byte in 0..row_bytes {
            out[i * row_bytes + byte] = table[id as usize * row_bytes + byte];
        }
    }
    Ok(())
}

/// `[b, h, w, c]` → `[b, (h/p)·(w/p), p·p·c]`, element by element.
pub fn im2col(x: &[u8], elem: usize, dims: [usize; 4], p: usize, out: &mut [u8]) {
    let [b, h, w, c] = dims;
    let (ph, pw) = (h / p, w / p);
    for bi in 0..b {
        for py in 0..ph {
            for px in 0..pw {
                for dy in 0..p {
                    for dx in 0..p {
                        for ci in 0..c {
                            let src = ((bi * h + py * p + dy) * w + px * p + dx) * c + ci;
                            let dst = ((bi * ph + py) * pw + px) * (p * p * c) + (dy * p + dx) * c + ci;
                            out[dst * elem..(dst + 1) * elem].copy_from_slice(&x[src * elem..(src + 1) * elem]);
                        }
                    }
                }
            }
        }
    }
}

/// Mean or max of the middle axis of `[outer, len, inner]` (mean in f64).
pub fn pool(kind: PoolKind, x: &[f32], outer: usize, len: usize, inner: usize, out: &mut [f32]) {
    for o in 0..outer {
        for i in 0..inner {
            let at = |t: usize| x[(o * len + t) * inner + i];
            out[o * inner + i] = match kind {
                PoolKind::Mean => ((0..len).map(|t| at(t) as f64).sum::<f64>() / len as f64) as f32,
                PoolKind::Max => (0..len).map(at).fold(f32::NEG_INFINITY, f32::max),
            };
        }
    }
}

/// Concatenate rows of `parts` (each `[outer, inner_bytes[i]]`).
pub fn concat(parts: &[&[u8]], outer: usize, inner_bytes: &[usize], out: &mut [u8]) {
    let total: usize = inner_bytes.iter().sum();
    for o in 0..outer {
        let mut col = 0;
        for (p, &ib) in parts.iter().zip(inner_bytes) {
            for byte in 0..ib {
                out[o * total + col + byte] = p[o * ib + byte];
            }
            col += ib;
        }
    }
}

/// Keep `start..end` of the middle axis of `[outer, len, inner]` (`inner` in bytes).
pub fn slice(x: &[u8], outer: usize, len: usize, inner: usize, start: usize, end: usize, out: &mut [u8]) {
    let keep = end - start;
    for o in 0..outer {
        for t in 0..keep {
            for byte in 0..inner {
                out[(o * keep + t) * inner + byte] = x[(o * len + start + t) * inner + byte];
            }
        }
    }
}

/// Permute axes: output axis `i` is input axis `perm[i]`.
pub fn permute(x: &[u8], elem: usize, dims: &[usize], perm: &[usize], out: &mut [u8]) {
    let rank = dims.len();
    let mut in_strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * dims[i + 1];
    }
    let out_dims: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    let n: usize = dims.iter().product();
    let mut idx = vec![0usize; rank];
    for o in 0..n {
        let src: usize = (0..rank).map(|i| idx[i] * in_strides[perm[i]]).sum();
        out[o * elem..(o + 1) * elem].copy_from_slice(&x[src * elem..(src + 1) * elem]);
        for ax in (0..rank).rev() {
            idx[ax] += 1;
            if idx[ax] < out_dims[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
}
