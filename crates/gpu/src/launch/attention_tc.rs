//! The f16 tensor-core path of fused attention (`kernels/gpu/attention_tc.cu`, FlashAttention-2
//! style: mma.sync m16n8k16, online softmax in f32 registers, cp.async double-buffered K/V).
//! It takes f16 Q/K/V with head_dim 32, 64, 80 or 128 on sm_80 and later; everything else
//! (other dtypes, head sizes, older archs, grids past the launch limits, unaligned buffers)
//! declines with `Ok(false)` so the general path runs it. Before anything is enqueued the
//! packed-batch offsets and the modality ids are read back and checked, as every backend does.

use omnifuse_core::attention::{MaskMode, sequences};
use omnifuse_core::op::Op;
use omnifuse_core::{DType, Error, Result, Tensor};

use crate::device::GpuDevice;
use crate::kernel::{Arg, Kernel, Source, Variant};

/// Head sizes compiled (each its own module).
const HEAD_DIMS: [usize; 4] = [32, 64, 80, 128];
/// Query rows per CTA: 64 (4 warps) by default, 128 (8 warps) when the grid is large anyway.
const TILES_M: [usize; 2] = [64, 128];
/// Keys per K/V tile.
const BN: usize = 64;
/// CTAs at BM = 128 from which the larger tile is taken (about two waves on a large GPU).
const BIG_TILE_CTAS: usize = 256;
/// The grid's y and z limits (kv heads and sequences).
const GRID_YZ_MAX: usize = 65535;

fn variant(head_dim: usize, bm: usize) -> Variant {
    let defines = [format!("-DHEAD_DIM={head_dim}"), format!("-DBM={bm}"), format!("-DBN={BN}")];
    let refs: Vec<&str> = defines.iter().map(String::as_str).collect();
    Variant::new(Source::AttentionTc, &refs)
}

/// Dynamic shared memory of one CTA: two K/V stages of `BN` rows padded by 8 halves, plus
/// the keys' modality ids of both stages (Q and the output are staged in the K/V stages).
fn shared_bytes(head_dim: usize) -> usize {
    4 * BN * (head_dim + 8) * 2 + 2 * BN
}

fn int(v: usize, what: &str) -> Result<Arg> {
    i32::try_from(v).map(Arg::I32).map_err(|_| Error::invalid(format!("fused_attention: {what} {v} exceeds i32")))
}

/// Ok(true) when handled here; Ok(false) to let the generic path take it (wrong dtype/arch/shape).
pub(crate) fn launch<D: GpuDevice>(be: &D, op: &Op, inputs: &[&Tensor], out: &Tensor) -> Result<bool> {
    let Op::FusedAttention(spec) = op else {
        return Ok(false);
    };
    let (qd, kd) = (inputs[0].desc.shape.dims(), inputs[1].desc.shape.dims());
    let head_dim = qd[2];
    if inputs[0].desc.dtype != DType::F16
        || be.tensor_cores().is_none_or(|arch| arch < 80)
        || !HEAD_DIMS.contains(&head_dim)
        || spec.kv_heads > GRID_YZ_MAX
        || inputs[3].desc.shape.dims()[0].saturating_sub(1) > GRID_YZ_MAX
    {
        return Ok(false);
    }
    let (q, k, v, o) = (be.ptr(inputs[0])?, be.ptr(inputs[1])?, be.ptr(inputs[2])?, be.ptr(out)?);
    // cp.async and the output stores move 16 bytes at a time.
    if [q, k, v, o].iter().any(|p| p % 16 != 0) {
        return Ok(false);
    }

    // Data-dependent checks: the same as every backend's, before anything is enqueued.
    let cu_q = be.read_i32(inputs[3])?;
    let cu_k = be.read_i32(inputs[4])?;
    let seq_q = sequences("cu_seqlens_q", &cu_q, qd[0])?;
    sequences("cu_seqlens_k", &cu_k, kd[0])?;
    for (what, t) in [("modality_q", inputs[5]), ("modality_k", inputs[6])] {
        let ids = be.read_i8(t)?;
        if let Some((at, &id)) = ids.iter().enumerate().find(|&(_, &id)| id < 0 || id as usize >= spec.modalities) {
            return Err(Error::invalid(format!(
                "fused_attention: {what}[{at}] is {id}, expected a modality id in 0..{}",
                spec.modalities
            )));
        }
    }

    let batch = seq_q.len();
    let max_lq = seq_q.iter().map(|s| s.1).max().unwrap_or(0);
    if batch == 0 || max_lq == 0 {
        return Ok(true); // no query rows: nothing to write
    }
    // Grouped-query packing: a CTA serves one kv head and its `group` query heads, so a
    // sequence has max_lq·group rows to tile.
    let group = spec.heads / spec.kv_heads;
    // (the kernel indexes rows in int, up to one tile past the last)
    let Some(rows) = max_lq.checked_mul(group).filter(|&r| r <= i32::MAX as usize - 256) else {
        return Ok(false);
    };
    let big = rows.div_ceil(128) * spec.kv_heads * batch >= BIG_TILE_CTAS;
    let bm = if big { TILES_M[1] } else { TILES_M[0] };

    let mut extra = inputs[7..].iter();
    let pairs = if spec.mask == MaskMode::Pairs { extra.next().map(|t| be.ptr(t)).transpose()? } else { None };
    let bias = if spec.bias { extra.next().map(|t| be.ptr(t)).transpose()? } else { None };
    let mask = match spec.mask {
        MaskMode::Full => 0,
        MaskMode::Intra => 1,
        MaskMode::Cross => 2,
        MaskMode::Pairs => 3,
        MaskMode::Causal => 4,
    };
    let use_mod = matches!(spec.mask, MaskMode::Intra | MaskMode::Cross | MaskMode::Pairs) || bias.is_some();
    let scale = spec.scale.unwrap_or(1.0 / (head_dim as f32).sqrt());

    let grid_x = rows.div_ceil(bm) as u32; // rows < 2³¹
    let kernel = Kernel {
        variant: variant(head_dim, bm),
        symbol: "attention_tc_flash_f16".into(),
        grid: [grid_x, spec.kv_heads as u32, batch as u32],
        block: [(bm / 16 * 32) as u32, 1, 1],
        shared_bytes: shared_bytes(head_dim) as u32,
    };
    let args = [
        Arg::Ptr(q),
        Arg::Ptr(k),
        Arg::Ptr(v),
        Arg::Ptr(be.ptr(inputs[3])?),
        Arg::Ptr(be.ptr(inputs[4])?),
        Arg::Ptr(be.ptr(inputs[5])?),
        Arg::Ptr(be.ptr(inputs[6])?),
        Arg::Ptr(pairs.unwrap_or(o)),
        Arg::Ptr(bias.unwrap_or(o)),
        Arg::Ptr(o),
        int(spec.heads, "heads")?,
        int(spec.kv_heads, "kv_heads")?,
        int(spec.modalities, "modalities")?,
        Arg::I32(mask),
        Arg::I32(i32::from(bias.is_some())),
        Arg::I32(i32::from(use_mod)),
        Arg::F32(scale),
    ];
    be.enqueue(&kernel, &args)?;
    Ok(true)
}

/// Every Variant this module may compile at run time, for the CI compile gate.
pub(crate) fn variants() -> Vec<Variant> {
    HEAD_DIMS.iter().flat_map(|&d| TILES_M.iter().map(move |&bm| variant(d, bm))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_head_size_and_tile_is_a_variant_within_the_shared_memory_of_sm80() {
        let v = variants();
        assert_eq!(v.len(), HEAD_DIMS.len() * TILES_M.len());
        assert!(v.iter().all(|x| x.source == Source::AttentionTc && x.defines.len() == 3));
        // the largest: two 64-row stages of K and V at head_dim 128, well under sm_80's 163 KiB
        assert_eq!(shared_bytes(128), 69_760);
        assert!(HEAD_DIMS.iter().all(|&d| shared_bytes(d) <= 163 * 1024));
    }
}
