//! Fast data movement: whole-row copies (`copy_from_slice`) instead of per-element indexing,
//! and a permute that copies contiguous runs when the innermost axis stays in place.

use omnifuse_core::op::PoolKind;
use omnifuse_core::{Error, Result};
use rayon::prelude::*;

use super::math::GRAIN;

/// Gather rows by id, one row copy each.
pub fn embedding(table: &[u8], rows: usize, row_bytes: usize, ids: &[i32], out: &mut [u8]) -> Result<()> {
    if let Some((i, &id)) = ids.iter().enumerate().find(|&(_, &id)| id < 0 || id as usize >= rows) {
        return Err(Error::invalid(format!("embedding: id {id} at position {i} is outside the table's 0..{rows}")));
    }
    if row_bytes == 0 {
        return Ok(());
    }
    for (o, &id) in out.chunks_exact_mut(row_bytes).zip(ids) {
        let id = id as usize;
        o.copy_from_slice(&table[id * row_bytes..(id + 1) * row_bytes]);
    }
    Ok(())
}

/// Patch extraction: each patch row (`p · c` elements) is one copy.
pub fn im2col(x: &[u8], elem: usize, dims: [usize; 4], p: usize, out: &mut [u8]) {
    let [b, h, w, c] = dims;
    let (ph, pw) = (h / p, w / p);
    let run = p * c * elem;
    let patch_bytes = p * run;
    if patch_bytes == 0 {
        return;
    }
    for (idx, dst) in out.chunks_exact_mut(patch_bytes).enumerate() {
        let (bi, rest) = (idx / (ph * pw), idx % (ph * pw));
        let (py, px) = (rest / pw, rest % pw);
        for dy in 0..p {
            let src = (((bi * h + py * p + dy) * w + px * p) * c) * elem;
            dst[dy * run..(dy + 1) * run].copy_from_slice(&x[src..src + run]);
        }
    }
    let _ = b;
}

/// Mean or max of the middle axis of `[outer, len, inner]`, vectorised over `inner`.
pub fn pool(kind: PoolKind, x: &[f32], outer: usize, len: usize, inner: usize, out: &mut [f32]) {
    let work = |o: usize, dst: &mut [f32]| {
        let base = &x[o * len * inner..(o + 1) * len * inner];
        match kind {
            PoolKind::Mean => {
                dst.fill(0.0);
                for row in base.chunks_exact(inner) {
                    dst.iter_mut().zip(row).for_each(|(d, &v)| *d += v);
                }
                let inv = 1.0 / len as f32;
                dst.iter_mut().for_each(|d| *d *= inv);
            }
            PoolKind::Max => {
                dst.fill(f32::NEG_INFINITY);
                for row in base.chunks_exact(inner) {
                    dst.iter_mut().zip(row).for_each(|(d, &v)| *d = d.max(v));
                }
            }
        }
    };
    if inner == 0 {
        return;
    }
    if x.len() > GRAIN {
        out.par_chunks_mut(inner).enumerate().for_each(|(o, d)| work(o, d));
    } else {
        out.chunks_exact_mut(inner).enumerate().for_each(|(o, d)| work(o, d));
    }
    let _ = outer;
}

/// Concatenate: per outer row, one copy per part.
pub fn concat(parts: &[&[u8]], outer: usize, inner_bytes: &[usize], out: &mut [u8]) {
    let total: usize = inner_bytes.iter().sum();
    if total == 0 {
        return;
    }
    for (o, row) in out.chunks_exact_mut(total).enumerate().take(outer) {
        let mut col = 0;
        for (p, &ib) in parts.iter().zip(inner_bytes) {
            row[col..col + ib].copy_from_slice(&p[o * ib..(o + 1) * ib]);
            col += ib;
        }
    }
}

/// Slice: per outer row, one copy of the kept run.
pub fn slice(x: &[u8], outer: usize, len: usize, inner: usize, start: usize, end: usize, out: &mut [u8]) {
    let run = (end - start) * inner;
    for o in 0..outer {
        let src = (o * len + start) * inner;
        out[o * run..(o + 1) * run].copy_from_slice(&x[src..src + run]);
    }
}

/// Permute: merges the trailing axes that stay in place into one contiguous run and walks
/// the rest with incrementally updated source offsets.
pub fn permute(x: &[u8], elem: usize, dims: &[usize], perm: &[usize], out: &mut [u8]) {
    let rank = dims.len();
    let total: usize = dims.iter().product();
    if total == 0 || elem == 0 {
        return;
    }
    let mut strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * dims[i + 1];
    }
    // Trailing axes i..rank with perm[i] == i, and all later ones in place, form one run.
    let mut keep = rank;
    while keep > 0 && perm[keep - 1] == keep - 1 {
        keep -= 1;
    }
    let run_elems: usize = dims[keep..].iter().product();
    let run = run_elems * elem;
    let outer_dims: Vec<usize> = perm[..keep].iter().map(|&p| dims[p]).collect();
    let outer_strides: Vec<usize> = perm[..keep].iter().map(|&p| strides[p] * elem).collect();
    let mut idx = vec![0usize; keep];
    let mut src = 0usize;
    for dst in out.chunks_exact_mut(run) {
        dst.copy_from_slice(&x[src..src + run]);
        for ax in (0..keep).rev() {
            idx[ax] += 1;
            src += outer_strides[ax];
            if idx[ax] < outer_dims[ax] {
                break;
            }
            src -= outer_strides[ax] * outer_dims[ax];
            idx[ax] = 0;
        }
    }
}
