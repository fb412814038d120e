//! The compile gate: every module variant the launch paths may use, compiled to PTX for each
//! requested arch through the same NVRTC path and options the runtime uses, written to a
//! folder for `ptxas -v` (see `ci/cuda-gate.sh`). Needs NVRTC, not a GPU.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// Compile every variant for every arch in `archs` (`80`, `90`) to PTX under `dir`, on as many
/// threads as the machine has cores (NVRTC is thread-safe); the first failure, in variant
/// order, is returned with its log.
pub fn compile_all(archs: &[u32], dir: &Path, progress: impl FnMut(&GateEntry) + Send) -> Result<Vec<GateEntry>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::invalid(format!("creating {}: {e}", dir.display())))?;
    let jobs: Vec<(Variant, u32)> =
        crate::variants().into_iter().flat_map(|v| archs.iter().map(move |&a| (v.clone(), a))).collect();
    let next = Mutex::new(0usize);
    let progress = Mutex::new(progress);
    let results: Mutex<Vec<Option<Result<GateEntry>>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = match next.lock() {
                        Ok(mut n) => {
                            *n += 1;
                            *n - 1
                        }
                        Err(_) => return,
                    };
                    let Some((v, a)) = jobs.get(i) else { return };
                    let r = compile_one(v, *a, dir);
                    if let (Ok(e), Ok(mut p)) = (&r, progress.lock()) {
                        (*p)(e);
                    }
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(r);
                    }
                }
            });
        }
    });
    let all = results.into_inner().map_err(|_| Error::invalid("compile gate: a worker panicked"))?;
    all.into_iter().map(|r| r.unwrap_or_else(|| Err(Error::invalid("compile gate: a job did not run")))).collect()
}

fn compile_one(v: &Variant, arch: u32, dir: &Path) -> Result<GateEntry> {
    let target = format!("compute_{arch}");
    let (ptx, _) = program::compile(v, &target, None)?;
    let path = dir.join(file_name(v, &target));
    std::fs::write(&path, &ptx).map_err(|e| Error::invalid(format!("writing {}: {e}", path.display())))?;
    Ok(GateEntry { spill_free: v.source.spill_free(), variant: v.clone(), target, ptx: path })
}
