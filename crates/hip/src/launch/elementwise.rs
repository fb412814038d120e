//! Elementwise ops from `kernels/gpu/pointwise.cu`: GELU, ReLU, scale, and add/mul with a
//! suffix broadcast (`b` repeats along `a`'s leading axes). One thread per element in a
//! grid-stride loop; the workgroup is four wavefronts of the device (256 threads on CDNA,
//! 128 on RDNA), so nothing assumes a width of 32 or 64.

use omnifuse_core::op::{Op, OpKind};
use omnifuse_core::{DType, Result, Tensor};

use crate::backend::HipBackend;
use crate::kernel::{Arg, Kernel, Source, Variant, blocks};

/// The op kinds handled here.
pub(crate) const KINDS: [OpKind; 5] = [OpKind::Gelu, OpKind::Relu, OpKind::Scale, OpKind::Add, OpKind::Mul];

/// Wavefronts per workgroup.
const WAVES: u32 = 4;
/// The most workgroups launched (the kernels stride over the rest).
const MAX_BLOCKS: u32 = 1 << 20;
/// The block size the module is compiled for: the largest workgroup any device gets here
/// (`__launch_bounds__`), i.e. four 64-wide wavefronts.
const PW_BLOCK: u32 = 256;

fn variant() -> Variant {
    Variant::new(Source::Pointwise, &["-DPW_BLOCK=256"])
}

fn suffix(dtype: DType) -> Option<&'static str> {
    match dtype {
        DType::F32 => Some("f32"),
        DType::F16 => Some("f16"),
        DType::BF16 => Some("bf16"),
        DType::I32 => Some("i32"),
        DType::I8 => None,
    }
}

/// The workgroup size on a device with wavefronts of `warp` lanes.
pub(crate) fn block_threads(warp: u32) -> u32 {
    (WAVES * warp).min(PW_BLOCK)
}

/// Ok(true) when handled here; Ok(false) for another op.
pub(crate) fn launch(be: &HipBackend, op: &Op, inputs: &[&Tensor], out: &Tensor) -> Result<bool> {
    let name = match op {
        Op::Gelu => "gelu",
        Op::Relu => "relu",
        Op::Scale { .. } => "scale",
        Op::Add => "add",
        Op::Mul => "mul",
        _ => return Ok(false),
    };
    let dtype = inputs[0].desc.dtype;
    let Some(sfx) = suffix(dtype) else { return Ok(false) };
    if dtype == DType::I32 && !matches!(op, Op::Add | Op::Mul) {
        return Ok(false);
    }
    let n = out.desc.shape.numel()?;
    if n == 0 {
        return Ok(true);
    }
    let threads = block_threads(be.warp_size());
    let kernel = Kernel {
        variant: variant(),
        symbol: format!("{name}_{sfx}"),
        grid: [blocks(n, threads as usize).min(MAX_BLOCKS), 1, 1],
        block: [threads, 1, 1],
        shared_bytes: 0,
    };
    let (x, y) = (be.ptr(inputs[0])?, be.ptr(out)?);
    let args = match op {
        Op::Scale { factor } => vec![Arg::Ptr(x), Arg::Ptr(y), Arg::U64(n as u64), Arg::F32(*factor)],
        Op::Add | Op::Mul => {
            let nb = inputs[1].desc.shape.numel()?.max(1);
            vec![Arg::Ptr(x), Arg::Ptr(be.ptr(inputs[1])?), Arg::Ptr(y), Arg::U64(n as u64), Arg::U64(nb as u64)]
        }
        _ => vec![Arg::Ptr(x), Arg::Ptr(y), Arg::U64(n as u64)],
    };
    be.enqueue(&kernel, &args)?;
    Ok(true)
}

/// The module this path compiles.
pub(crate) fn variants() -> Vec<Variant> {
    vec![variant()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workgroups_are_whole_wavefronts_within_the_compiled_bound() {
        assert_eq!(block_threads(64), 256);
        assert_eq!(block_threads(32), 128);
        for w in [32, 64] {
            assert_eq!(block_threads(w) % w, 0);
            assert!(block_threads(w) <= PW_BLOCK);
        }
        assert_eq!(variants(), vec![Variant::new(Source::Pointwise, &["-DPW_BLOCK=256"])]);
    }
}
