//! The compile gate: every module variant the launch paths may use, compiled to PTX for each
//! requested arch through the same NVRTC path and options the runtime uses, written to a
//! folder for `ptxas -v` (see `ci/cuda-gate.sh`). Needs NVRTC, not a GPU.

use std::path::{Path, PathBuf};

use omnifuse_core::{Error, Result};

use crate::kernel::Variant;
use crate::program;

/// One compiled module.
#[derive(Clone, Debug)]
pub struct GateEntry {
    /// What was compiled.
    pub variant: Variant,
    /// The target (`compute_80`).
    pub target: String,
    /// The PTX file written.
    pub ptx: PathBuf,
    /// Must its kernels be spill-free.
    pub spill_free: bool,
}

/// The file name of a variant's PTX: source stem, a hash of the defines, the target.
fn file_name(v: &Variant, target: &str) -> String {
    let stem = v.source.file().trim_end_matches(".cu");
    let defs = v.defines.join(" ");
    let tag = omnifuse_core::cache::key(&defs, "", "", "");
    format!("{stem}.{}.{target}.ptx", &tag[..tag.len().min(12)])
}

/// Compile every variant for every arch in `archs` (`80`, `90`) to PTX under `dir`; the first
/// failure stops with its log.
pub fn compile_all(archs: &[u32], dir: &Path, mut progress: impl FnMut(&GateEntry)) -> Result<Vec<GateEntry>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::invalid(format!("creating {}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for v in crate::launch::variants() {
        for &a in archs {
            let target = format!("compute_{a}");
            let (ptx, _) = program::compile(&v, &target, None)?;
            let path = dir.join(file_name(&v, &target));
            std::fs::write(&path, &ptx).map_err(|e| Error::invalid(format!("writing {}: {e}", path.display())))?;
            let e = GateEntry { spill_free: v.source.spill_free(), variant: v.clone(), target, ptx: path };
            progress(&e);
            out.push(e);
        }
    }
    Ok(out)
}
