//! Compiling a [`Variant`] with NVRTC for one target, through the on-disk kernel cache.
//!
//! The runtime asks for a cubin for the device's exact arch (`sm_90`); the CI compile gate
//! asks for PTX (`compute_80`, `compute_90`) and assembles it with `ptxas -v`. Both go through
//! [`compile`], so the gate checks exactly the text and options the runtime compiles. The
//! cache key covers the source, the compat header, the target, NVRTC's version and the
//! options ([`omnifuse_core::cache::key`]).

use omnifuse_core::cache::{KernelCache, key};
use omnifuse_core::{Error, Result};

use crate::kernel::{HEADER, Variant};
use crate::nvrtc;

/// Where a module image came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Compiled now.
    Compiled,
    /// Read from the disk cache.
    Cached,
}

/// The options a variant is compiled with for `target` (`sm_90` or `compute_90`).
pub fn options(variant: &Variant, target: &str) -> Vec<String> {
    let mut o = vec![format!("--gpu-architecture={target}"), "-std=c++17".to_string(), "-default-device".to_string()];
    o.extend(variant.defines.iter().cloned());
    o
}

/// The module image (cubin for `sm_*`, PTX for `compute_*`) of `variant` for `target`, from
/// the cache when it holds one.
pub fn compile(variant: &Variant, target: &str, cache: Option<&KernelCache>) -> Result<(Vec<u8>, Origin)> {
    let compiler = nvrtc::get().map_err(|reason| Error::DeviceUnavailable { device: "cuda".into(), reason })?;
    let opts = options(variant, target);
    let (maj, min) = compiler.version();
    let text = format!("{}\n{}", HEADER.1, variant.source.text());
    let k = key(&text, target, &format!("nvrtc{maj}.{min}"), &opts.join(" "));
    if let Some(bytes) = cache.and_then(|c| c.get(&k)) {
        return Ok((bytes, Origin::Cached));
    }
    let out = compiler
        .compile(variant.source.text(), variant.source.file(), &[HEADER], &opts)
        .map_err(|e| Error::invalid(format!("kernels/gpu/{e}")))?;
    if let Some(c) = cache {
        // A cache that cannot be written only costs a compile next time.
        let _ = c.put(&k, &out.image);
    }
    Ok((out.image, Origin::Compiled))
}
