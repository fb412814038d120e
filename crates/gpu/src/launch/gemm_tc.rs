//! The tensor-core GEMM path (`kernels/gpu/gemm_tc.cu`) for f16 and bf16 `Op::Gemm` on
//! sm_80+, with the epilogue fused; i8 × i8 → i32 `Op::Gemm` with a transposed B goes to the
//! INT8 tensor-core kernel ([`super::qgemm_tc::launch_i8_gemm`]).
//!
//! Declined (`Ok(false)`, the general path runs it): f32 storage (tensor-core TF32 would
//! miss the f32 accuracy bound), an arch below sm_80, and shapes whose stored rows are not
//! whole 16-byte chunks (K % 8 ≠ 0 for a K-major operand, M % 8 ≠ 0 for a transposed A,
//! N % 8 ≠ 0 for a row-major `[K, N]` B), dimensions beyond `i32`, more than 65535 batches
//! or row tiles, and pointers not 16-byte aligned.

use omnifuse_core::infer::gemm_dims;
use omnifuse_core::op::Op;
use omnifuse_core::{DType, Result, Tensor};

use crate::device::GpuDevice;
use crate::kernel::{Arg, Kernel, Source, Variant};

/// One block-tile configuration of the tensor-core kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tile {
    /// Output rows per block.
    pub bm: usize,
    /// Output columns per block.
    pub bn: usize,
    /// Warps along M.
    pub warps_m: usize,
    /// Warps along N.
    pub warps_n: usize,
    /// Pipeline depth.
    pub stages: usize,
    /// Blocks per SM the launch bounds ask for (caps registers at 65536 / (threads · this)).
    pub min_blocks: usize,
}

/// 128 × 128 tiles, 8 warps of 64 × 32, 4 stages (64 KiB of shared memory): large products.
pub(crate) const BIG: Tile = Tile { bm: 128, bn: 128, warps_m: 2, warps_n: 4, stages: 4, min_blocks: 2 };
/// 64 × 64 tiles, 4 warps of 32 × 32, 4 stages (32 KiB): products too small to fill the
/// device with 128 × 128 tiles.
pub(crate) const SMALL: Tile = Tile { bm: 64, bn: 64, warps_m: 2, warps_n: 2, stages: 4, min_blocks: 4 };
/// Every tile configuration, for the variant lists.
pub(crate) const TILES: [Tile; 2] = [BIG, SMALL];

impl Tile {
    /// Threads per block (the tensor-core kernels run on NVIDIA's 32-lane warps only).
    pub fn threads(self) -> u32 {
        (self.warps_m * self.warps_n * 32) as u32
    }

    /// The tile defines, in a fixed order.
    pub fn defines(self) -> Vec<String> {
        vec![
            format!("-DBM={}", self.bm),
            format!("-DBN={}", self.bn),
            format!("-DWARPS_M={}", self.warps_m),
            format!("-DWARPS_N={}", self.warps_n),
            format!("-DSTAGES={}", self.stages),
            format!("-DMIN_BLOCKS={}", self.min_blocks),
        ]
    }

    /// Dynamic shared memory: `stages` slabs of (BM + BN) rows of 64 bytes (BK = 32 f16
    /// values in gemm_tc.cu, 64 i8 values in qgemm_tc.cu).
    pub fn shared_bytes(self) -> u32 {
        (self.stages * (self.bm + self.bn) * 64) as u32
    }

    /// Grid for `batch` products of `m × n`, or `None` when it exceeds the limits of y / z.
    pub fn grid(self, batch: usize, m: usize, n: usize) -> Option<[u32; 3]> {
        let (gx, gy) = (n.div_ceil(self.bn), m.div_ceil(self.bm));
        if gx > i32::MAX as usize || gy > 65535 || batch > 65535 {
            return None;
        }
        Some([gx as u32, gy as u32, batch as u32])
    }
}

/// The tile for `batch` products of `m × n` on `be`: 128 × 128 when that already gives at
/// least one block per SM, else 64 × 64 (four times the blocks for small or skinny products).
pub(crate) fn pick_tile<D: GpuDevice>(be: &D, batch: usize, m: usize, n: usize) -> Tile {
    let sms = be.compute_units().max(1);
    let big = m.div_ceil(BIG.bm).saturating_mul(n.div_ceil(BIG.bn)).saturating_mul(batch);
    if big >= sms { BIG } else { SMALL }
}

/// True when every address is 16-byte aligned (what the 16-byte cp.async copies and the
/// paired epilogue accesses need).
pub(crate) fn aligned(ptrs: &[u64]) -> bool {
    ptrs.iter().all(|p| p.is_multiple_of(16))
}

/// The define set of one gemm_tc.cu module.
fn variant(bf16: bool, trans_a: bool, trans_b: bool, tile: Tile) -> Variant {
    let mut defines = vec![
        format!("-DBF16={}", bf16 as u8),
        format!("-DTRANS_A={}", trans_a as u8),
        format!("-DTRANS_B={}", trans_b as u8),
    ];
    defines.extend(tile.defines());
    Variant { source: Source::GemmTc, defines }
}

/// Run `op` on the tensor cores when it is an f16/bf16 GEMM of a supported shape (or an
/// i8 GEMM with a transposed B); `Ok(false)` otherwise.
pub(crate) fn launch<D: GpuDevice>(be: &D, op: &Op, inputs: &[&Tensor], out: &Tensor) -> Result<bool> {
    let Op::Gemm(spec) = op else { return Ok(false) };
    if be.tensor_cores().is_none_or(|arch| arch < 80) || inputs.len() < 2 {
        return Ok(false);
    }
    let dt = inputs[0].desc.dtype;
    if dt == DType::I8 {
        return super::qgemm_tc::launch_i8_gemm(be, spec, inputs, out);
    }
    let bf16 = match dt {
        DType::F16 => false,
        DType::BF16 => true,
        _ => return Ok(false),
    };
    let d = gemm_dims(op, &inputs[0].desc, &inputs[1].desc, spec.trans_a, spec.trans_b)?;
    if out.desc.numel() == 0 {
        return Ok(true);
    }
    let fits = |v: usize| v <= i32::MAX as usize;
    if !fits(d.m) || !fits(d.n) || !fits(d.k) {
        return Ok(false);
    }
    // Whole 16-byte chunks in every stored row of A and B.
    let a_rows_ok = if spec.trans_a { d.m.is_multiple_of(8) } else { d.k.is_multiple_of(8) };
    let b_rows_ok = if spec.trans_b { d.k.is_multiple_of(8) } else { d.n.is_multiple_of(8) };
    if !a_rows_ok || !b_rows_ok {
        return Ok(false);
    }
    let tile = pick_tile(be, d.batch, d.m, d.n);
    let Some(grid) = tile.grid(d.batch, d.m, d.n) else { return Ok(false) };

    let ep = &spec.epilogue;
    let mut extra = inputs[2..].iter();
    let bias = if ep.bias { extra.next().map(|t| be.ptr(t)).transpose()? } else { None };
    let res = if ep.residual { extra.next().map(|t| be.ptr(t)).transpose()? } else { None };
    let (a, b, y) = (be.ptr(inputs[0])?, be.ptr(inputs[1])?, be.ptr(out)?);
    let mut ptrs = vec![a, b, y];
    ptrs.extend(bias.iter().chain(res.iter()));
    if !aligned(&ptrs) {
        return Ok(false);
    }
    let kernel = Kernel {
        variant: variant(bf16, spec.trans_a, spec.trans_b, tile),
        symbol: if bf16 { "gemm_tc_bf16" } else { "gemm_tc_f16" }.into(),
        grid,
        block: [tile.threads(), 1, 1],
        shared_bytes: tile.shared_bytes(),
    };
    let args = [
        Arg::Ptr(a),
        Arg::Ptr(b),
        Arg::Ptr(bias.unwrap_or(y)),
        Arg::Ptr(res.unwrap_or(y)),
        Arg::Ptr(y),
        Arg::I32(d.m as i32),
        Arg::I32(d.n as i32),
        Arg::I32(d.k as i32),
        Arg::I64((d.m * d.k) as i64),
        Arg::I64(if d.b_shared { 0 } else { (d.k * d.n) as i64 }),
        Arg::F32(ep.scale),
        Arg::I32(bias.is_some() as i32),
        Arg::I32(ep.activation.code()),
        Arg::I32(res.is_some() as i32),
    ];
    be.enqueue(&kernel, &args)?;
    Ok(true)
}

/// Every gemm_tc.cu module [`launch`] may compile: f16 and bf16, the four transpose
/// combinations, both tiles.
pub(crate) fn variants() -> Vec<Variant> {
    let mut v = Vec::new();
    for bf16 in [false, true] {
        for trans_a in [false, true] {
            for trans_b in [false, true] {
                for tile in TILES {
                    v.push(variant(bf16, trans_a, trans_b, tile));
                }
            }
        }
    }
    v
}
