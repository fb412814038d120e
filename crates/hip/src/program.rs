//! Compiling a [`Variant`] with hiprtc for one gfx arch, through the on-disk kernel cache.
//!
//! The runtime compiles for the device's exact `gcnArchName` (`gfx90a:sramecc+:xnack-`, so
//! the code object's target features match what the loader expects); tests compile for the
//! archs of [`RTC_ARCHS`] without a device. The cache key covers the source, the compat
//! header, the arch, hiprtc's and the runtime's versions and the options
//! ([`omnifuse_core::cache::key`]).

use omnifuse_core::cache::{KernelCache, key};
use omnifuse_core::{Error, Result};

use crate::hiprtc;
use crate::kernel::{HEADER, Variant};

/// Archs hiprtc compiles for from ROCm 5.2 on, checked without a device: MI100 (gfx908),
/// MI200 (gfx90a) and RDNA2 (gfx1030, wave32). ROCm 5.2's hiprtc crashes the process on
/// gfx940 (which its hipcc accepts) and on unknown targets; newer targets (gfx942, gfx950,
/// gfx11xx) need a newer ROCm and come from the device at run time.
pub const RTC_ARCHS: [&str; 3] = ["gfx90a", "gfx908", "gfx1030"];

/// Where a code object came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Compiled now.
    Compiled,
    /// Read from the disk cache.
    Cached,
}

/// The options a variant is compiled with for `arch` (no fast math: results are checked
/// against the f32 reference).
pub fn options(variant: &Variant, arch: &str) -> Vec<String> {
    let mut o = vec![format!("--offload-arch={arch}"), "-O3".to_string(), "-std=c++17".to_string()];
    o.extend(variant.defines.iter().cloned());
    o
}

/// True for a plausible arch string (`gfx` + hex digits, optional `:feature±` flags): hiprtc
/// may abort the process on a malformed one, so nothing else is passed to it.
pub fn valid_arch(arch: &str) -> bool {
    let mut parts = arch.split(':');
    let proc_ok = parts.next().and_then(|p| p.strip_prefix("gfx")).is_some_and(|d| {
        (3..=4).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    });
    proc_ok
        && parts.all(|f| {
            f.len() > 1
                && (f.ends_with('+') || f.ends_with('-'))
                && f[..f.len() - 1].bytes().all(|b| b.is_ascii_lowercase())
        })
}

/// The code object of `variant` for `arch`, from the cache when it holds one. `runtime`
/// is the HIP runtime's version (part of the key; 0 where there is no runtime).
pub fn compile(variant: &Variant, arch: &str, runtime: i32, cache: Option<&KernelCache>) -> Result<(Vec<u8>, Origin)> {
    if !valid_arch(arch) {
        return Err(Error::invalid(format!("HIP: '{arch}' is not a gfx arch (expected e.g. gfx90a)")));
    }
    let compiler = hiprtc::get().map_err(|reason| Error::DeviceUnavailable { device: "hip".into(), reason })?;
    let opts = options(variant, arch);
    let (maj, min) = compiler.version();
    let text = format!("{}\n{}", HEADER.1, variant.source.text());
    let k = key(&text, arch, &format!("hiprtc{maj}.{min} hip{runtime}"), &opts.join(" "));
    if let Some(bytes) = cache.and_then(|c| c.get(&k)) {
        return Ok((bytes, Origin::Cached));
    }
    let out = compiler
        .compile(variant.source.text(), variant.source.file(), &[HEADER], &opts)
        .map_err(|e| Error::Backend { backend: "hip".into(), message: format!("kernels/gpu/{e}") })?;
    if let Some(c) = cache {
        // A cache that cannot be written only costs a compile next time.
        let _ = c.put(&k, &out.image);
    }
    Ok((out.image, Origin::Compiled))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Source;

    #[test]
    fn archs_are_checked_before_hiprtc_sees_them() {
        for a in ["gfx90a", "gfx908", "gfx1030", "gfx942:sramecc+:xnack-", "gfx1100"] {
            assert!(valid_arch(a), "{a}");
        }
        for a in ["", "gfx", "sm_90", "gfx90A", "gfx90a:", "gfx90a:xnack", "gfx90a;rm -rf", "gfx12345"] {
            assert!(!valid_arch(a), "{a}");
        }
        assert!(RTC_ARCHS.iter().all(|a| valid_arch(a)));
        let v = Variant::new(Source::Pointwise, &["-DPW_BLOCK=256"]);
        assert_eq!(options(&v, "gfx90a"), ["--offload-arch=gfx90a", "-O3", "-std=c++17", "-DPW_BLOCK=256"]);
        let e = compile(&v, "sm_90", 0, None).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("'sm_90' is not a gfx arch"), "{e}");
    }
}
