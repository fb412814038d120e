//! Kernel programs: the embedded OpenCL C sources (one op family per file in
//! `kernels/opencl/`, each prefixed with `common.cl`), built with clBuildProgram at first
//! use, and a disk cache of program binaries keyed by (source hash, device name, driver
//! version, build options) under `${OMNIFUSE_CACHE:-$XDG_CACHE_HOME/omnifuse}/opencl`.
//!
//! A cache entry carries a header (magic, length, checksum); an entry that fails it, or that
//! the driver refuses, is rebuilt from source and overwritten — a corrupt cache is never
//! fatal, and failing to write the cache only costs the next run a rebuild.

use std::path::{Path, PathBuf};

use omnifuse_core::cache::{KernelCache, key};
use omnifuse_core::{Error, Result};
use opencl3::context::Context;
use opencl3::program::Program;
use opencl3::types::cl_device_id;

/// The shared prelude: storage types, load/store macros, activations.
pub const COMMON: &str = include_str!("../../../kernels/opencl/common.cl");

/// One op family: one source file, one program per set of build options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// GELU, ReLU, scale, add, mul, quantize, dequantize.
    Pointwise,
    /// Layer norm, softmax, pooling.
    Norm,
    /// Embedding, im2col, permute, row copies.
    Layout,
    /// 1-D convolution.
    Conv,
    /// Tiled GEMM with epilogue.
    Gemm,
    /// Flash-style fused attention.
    Attention,
    /// The FMA throughput probe behind the estimated peak.
    Probe,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 7] =
        [Family::Pointwise, Family::Norm, Family::Layout, Family::Conv, Family::Gemm, Family::Attention, Family::Probe];

    /// The file name under `kernels/opencl/`.
    pub fn file(self) -> &'static str {
        match self {
            Family::Pointwise => "pointwise.cl",
            Family::Norm => "norm.cl",
            Family::Layout => "layout.cl",
            Family::Conv => "conv.cl",
            Family::Gemm => "gemm.cl",
            Family::Attention => "attention.cl",
            Family::Probe => "probe.cl",
        }
    }

    /// The family's own source text.
    pub fn source(self) -> &'static str {
        match self {
            Family::Pointwise => include_str!("../../../kernels/opencl/pointwise.cl"),
            Family::Norm => include_str!("../../../kernels/opencl/norm.cl"),
            Family::Layout => include_str!("../../../kernels/opencl/layout.cl"),
            Family::Conv => include_str!("../../../kernels/opencl/conv.cl"),
            Family::Gemm => include_str!("../../../kernels/opencl/gemm.cl"),
            Family::Attention => include_str!("../../../kernels/opencl/attention.cl"),
            Family::Probe => include_str!("../../../kernels/opencl/probe.cl"),
        }
    }

    /// What clBuildProgram compiles: the prelude, then the family.
    pub fn full_source(self) -> String {
        format!("{COMMON}\n#line 1\n{}", self.source())
    }
}

/// The cache directory: `opencl` under omnifuse's cache root (`$OMNIFUSE_CACHE`, else
/// `$XDG_CACHE_HOME/omnifuse`, else `~/.cache/omnifuse`).
pub fn cache_dir() -> PathBuf {
    omnifuse_core::cache::cache_root().join("opencl")
}

const MAGIC: &[u8; 8] = b"OFCLBIN1";

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3))
}

/// A cache entry: magic, payload length, payload checksum, payload.
pub fn wrap(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 24);
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    v.extend_from_slice(&checksum(payload).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// The payload of a cache entry, or `None` when the entry is truncated or corrupt.
fn unwrap(entry: &[u8]) -> Option<&[u8]> {
    let (head, payload) = (entry.get(..24)?, entry.get(24..)?);
    let len = u64::from_le_bytes(head[8..16].try_into().ok()?);
    let sum = u64::from_le_bytes(head[16..24].try_into().ok()?);
    (&head[..8] == MAGIC && len == payload.len() as u64 && sum == checksum(payload) && !payload.is_empty())
        .then_some(payload)
}

/// Where a program came from (for tests and `kernels` reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Loaded from the disk cache.
    Cache,
    /// Compiled from source (and stored in the cache).
    Source,
}

/// Everything that identifies a device's compiler, for the cache key.
#[derive(Clone, Debug)]
pub struct Builder {
    /// The device's name.
    pub device_name: String,
    /// Its driver version.
    pub driver: String,
    /// The registry name, for errors.
    pub device: String,
    /// Options added to every build (e.g. correctly rounded division).
    pub base_options: String,
    /// The binary cache.
    pub cache: KernelCache,
}

impl Builder {
    /// The cache key of `family` built with `options`.
    pub fn key(&self, family: Family, options: &str) -> String {
        key(&family.full_source(), &self.device_name, &self.driver, &self.full_options(options))
    }

    fn full_options(&self, options: &str) -> String {
        format!("{} {options}", self.base_options).trim().to_string()
    }

    /// The cache directory in use.
    pub fn cache_path(&self) -> &Path {
        self.cache.dir()
    }

    /// Build `family` with `options` for `device_id` in `context`: from the cache when a
    /// valid entry exists, else from source (then cached).
    pub fn build(
        &self,
        context: &Context,
        device_id: cl_device_id,
        family: Family,
        options: &str,
    ) -> Result<(Program, Origin)> {
        let options = self.full_options(options);
        let src = family.full_source();
        let k = key(&src, &self.device_name, &self.driver, &options);
        if let Some(entry) = self.cache.get(&k)
            && let Some(bin) = unwrap(&entry)
        {
            // SAFETY: `device_id` is the device `context` was created for (the backend owns
            // both); the binary is a byte slice the driver validates.
            let made = unsafe { Program::create_from_binary(context, &[device_id], &[bin]) };
            if let Ok(mut p) = made
                && p.build(&[device_id], &options).is_ok()
            {
                return Ok((p, Origin::Cache));
            }
        }
        let fail = |what: &str, detail: String| Error::Backend {
            backend: self.device.clone(),
            message: format!("{what} {} with options '{options}': {detail}", family.file()),
        };
        let mut p = Program::create_from_source(context, &src).map_err(|e| fail("creating", e.to_string()))?;
        if let Err(e) = p.build(&[device_id], &options) {
            let log = p.get_build_log(device_id).unwrap_or_default();
            return Err(fail("building", format!("{e}\n{log}")));
        }
        if let Ok(bins) = p.get_binaries()
            && let Some(bin) = bins.first().filter(|b| !b.is_empty())
        {
            // The cache is an optimisation: a failed write only means a rebuild next time.
            let _ = self.cache.put(&k, &wrap(bin));
        }
        Ok((p, Origin::Source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_corruption_is_detected() {
        let e = wrap(b"binary");
        assert_eq!(unwrap(&e), Some(&b"binary"[..]));
        let mut bad = e.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(unwrap(&bad), None);
        assert_eq!(unwrap(&e[..e.len() - 1]), None);
        assert_eq!(unwrap(b"short"), None);
    }

    #[test]
    fn every_family_opens_with_its_comment() {
        for f in Family::ALL {
            let first = f.source().lines().next().unwrap_or_default();
            assert!(first.starts_with(&format!("// {}", f.file())), "{}: {first}", f.file());
        }
    }
}
