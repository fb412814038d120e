//! On-disk cache of compiled kernels, shared by the GPU backends: a binary (PTX, cubin, code
//! object, OpenCL program binary) is stored under a key derived from everything that decides
//! it — the source text, the device architecture, the driver and the compile options — so a
//! change to any of them misses instead of loading a stale binary.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// 64-bit FNV-1a over `bytes`, starting from `seed`.
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3))
}

/// The cache key of a kernel build: 128 bits of hash over the length-prefixed parts, in hex.
pub fn key(source: &str, arch: &str, driver: &str, options: &str) -> String {
    let mut a = 0xcbf2_9ce4_8422_2325u64;
    let mut b = 0x8422_2325_cbf2_9ce4u64;
    for part in [source, arch, driver, options] {
        let len = (part.len() as u64).to_le_bytes();
        a = fnv1a(fnv1a(a, &len), part.as_bytes());
        b = fnv1a(fnv1a(b, part.as_bytes()), &len);
    }
    format!("{a:016x}{b:016x}")
}

/// A directory of cached kernel binaries.
#[derive(Clone, Debug)]
pub struct KernelCache {
    dir: PathBuf,
}

/// The root of every omnifuse cache (kernel binaries, tuning files, model downloads, the
/// reference check's Python environment): `$OMNIFUSE_CACHE`, else `$XDG_CACHE_HOME/omnifuse`,
/// else `$HOME/.cache/omnifuse`, else a folder in the system temp directory. The scripts in
/// tools/ use the same rule.
pub fn cache_root() -> PathBuf {
    let set = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = set("OMNIFUSE_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = set("XDG_CACHE_HOME") {
        return Path::new(&d).join("omnifuse");
    }
    if let Some(d) = set("HOME") {
        return Path::new(&d).join(".cache/omnifuse");
    }
    std::env::temp_dir().join("omnifuse-cache")
}

impl KernelCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        KernelCache { dir: dir.into() }
    }

    /// The default location: `kernels` under [`cache_root`].
    pub fn default_dir() -> PathBuf {
        cache_root().join("kernels")
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cached binary for `key`, if present and readable.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join(key)).ok()
    }

    /// Store `bytes` under `key`, atomically (write a temporary file, then rename), so a
    /// concurrent reader never sees half a binary.
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let io = |context: String| move |source| Error::Io { context, source };
        std::fs::create_dir_all(&self.dir).map_err(io(format!("creating kernel cache {}", self.dir.display())))?;
        let tmp = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        let mut f = std::fs::File::create(&tmp).map_err(io(format!("writing {}", tmp.display())))?;
        f.write_all(bytes).map_err(io(format!("writing {}", tmp.display())))?;
        drop(f);
        let dst = self.dir.join(key);
        std::fs::rename(&tmp, &dst).map_err(io(format!("renaming into {}", dst.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_with_every_part_and_round_trip() {
        let k = key("src", "sm_90", "13.0", "-O3");
        assert_eq!(k.len(), 32);
        assert_eq!(k, key("src", "sm_90", "13.0", "-O3"));
        for other in [
            key("src2", "sm_90", "13.0", "-O3"),
            key("src", "sm_80", "13.0", "-O3"),
            key("src", "sm_90", "12.9", "-O3"),
            key("src", "sm_90", "13.0", "-O2"),
            key("srcsm_90", "", "13.0", "-O3"),
        ] {
            assert_ne!(k, other);
        }
        let dir = std::env::temp_dir().join(format!("omnifuse-cache-test-{}", std::process::id()));
        let cache = KernelCache::new(&dir);
        assert_eq!(cache.get(&k), None);
        cache.put(&k, b"binary").expect("put");
        assert_eq!(cache.get(&k).as_deref(), Some(&b"binary"[..]));
        let _ = std::fs::remove_dir_all(dir);
    }
}
