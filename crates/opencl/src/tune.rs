//! GEMM tile tuning: time candidate tile configurations of `gemm.cl` on the device, check
//! each one's result against a host product, and keep the fastest correct one per device in
//! a tuning file (`<cache dir>/tuning.txt`, see [`crate::program::cache_dir`]) that the
//! backend reads when it opens. A line of the file is
//! `device name | driver<TAB>gemm<TAB>VARIANT TM TN TK WM WN<TAB>GFLOP/s`, VARIANT being
//! `tiled` or `vec` ([`GemmVariant`]); a line without it (the first format) is `tiled`. A
//! line this version cannot read (an unknown variant, say) is no entry, never an error.

use std::path::{Path, PathBuf};
use std::time::Instant;

use omnifuse_core::op::{GemmSpec, Op};
use omnifuse_core::{Backend, Error, HostTensor, Result};

use crate::backend::{GemmTiles, GemmVariant, OpenClBackend};
use crate::program::cache_dir;

/// The tuning file.
pub fn tuning_file() -> PathBuf {
    cache_dir().join("tuning.txt")
}

/// The key of a device in the tuning file: its name and driver version, on one line.
pub fn device_key(device_name: &str, driver: &str) -> String {
    format!("{device_name} | {driver}").replace(['\t', '\n', '\r'], " ")
}

/// The candidates; those a device cannot run are skipped. The `tiled` ones (largest work
/// first) suit GPUs; the `vec` ones (no local memory, contiguous vector blocks per work-item,
/// in one K sweep or in K blocks between barriers) suit CPU-class devices such as PoCL,
/// where the work-items of a group run in turn on one core and share its block of B in cache.
pub const CANDIDATES: [GemmTiles; 20] = [
    GemmTiles::tiled(128, 128, 8, 8, 8),
    GemmTiles::tiled(128, 64, 16, 8, 4),
    GemmTiles::tiled(64, 128, 8, 4, 8),
    GemmTiles::tiled(64, 64, 16, 4, 4),
    GemmTiles::tiled(64, 64, 16, 8, 4),
    GemmTiles::tiled(64, 64, 8, 8, 8),
    GemmTiles::tiled(32, 64, 16, 4, 4),
    GemmTiles::tiled(32, 32, 16, 4, 4),
    GemmTiles::tiled(16, 16, 16, 2, 2),
    GemmTiles::vec(64, 16, 0, 4, 16),
    GemmTiles::vec(96, 16, 0, 12, 16),
    GemmTiles::vec(64, 32, 0, 8, 16),
    GemmTiles::vec(64, 8, 0, 8, 8),
    GemmTiles::vec(32, 64, 0, 4, 4),
    GemmTiles::vec(96, 16, 128, 12, 16),
    GemmTiles::vec(128, 32, 128, 8, 16),
    GemmTiles::vec(128, 64, 64, 8, 16),
    GemmTiles::vec(256, 64, 128, 8, 16),
    GemmTiles::vec(256, 32, 256, 8, 16),
    GemmTiles::vec(192, 64, 128, 12, 16),
];

fn parse_tiles(s: &str) -> Option<GemmTiles> {
    let mut words = s.split_whitespace().peekable();
    let variant = match words.peek().map(|w| w.parse::<usize>()) {
        Some(Err(_)) => GemmVariant::parse(words.next()?)?,
        _ => GemmVariant::Tiled,
    };
    let v: Vec<usize> = words.map(|x| x.parse().ok()).collect::<Option<_>>()?;
    match v[..] {
        [tm, tn, tk, wm, wn] => Some(GemmTiles { variant, tm, tn, tk, wm, wn }),
        _ => None,
    }
}

/// The GEMM tiles stored for `key` in `file`, if any (an unreadable or malformed file is
/// no entry).
pub fn stored(file: &Path, key: &str) -> Option<GemmTiles> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() >= 3 && f[0] == key && f[1] == "gemm").then(|| parse_tiles(f[2])).flatten()
        })
        .next_back()
}

/// Record `tiles` as the GEMM winner for `key` in `file`, replacing an older entry; written
/// atomically (temporary file, then rename).
pub fn store(file: &Path, key: &str, tiles: GemmTiles, gflops: f64) -> Result<()> {
    let io = |context: String| move |source| Error::Io { context, source };
    let old = std::fs::read_to_string(file).unwrap_or_default();
    let mut lines: Vec<String> = old
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            !(f.len() >= 2 && f[0] == key && f[1] == "gemm")
        })
        .map(str::to_string)
        .collect();
    let GemmTiles { variant, tm, tn, tk, wm, wn } = tiles;
    lines.push(format!("{key}\tgemm\t{} {tm} {tn} {tk} {wm} {wn}\t{gflops:.1}", variant.name()));
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    let tmp = file.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, lines.join("\n") + "\n").map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, file).map_err(io(format!("renaming into {}", file.display())))
}

/// One candidate's outcome.
#[derive(Clone, Debug)]
pub struct Trial {
    /// The tiles.
    pub tiles: GemmTiles,
    /// GFLOP/s, or why the candidate was rejected (does not fit, failed to build, wrong).
    pub result: std::result::Result<f64, String>,
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Time every candidate on an f32 `m × k` by `k × n` GEMM, `reps` timed launches each.
/// Leaves the backend on its previous tiles.
pub fn tune_gemm(b: &OpenClBackend, m: usize, n: usize, k: usize, reps: usize) -> Result<Vec<Trial>> {
    if m == 0 || n == 0 || k == 0 || reps == 0 {
        return Err(Error::invalid(format!("tune: m, n, k and reps must be positive, got {m}, {n}, {k}, {reps}")));
    }
    let (a, bm) = (values(m * k, 1), values(k * n, 2));
    let mut want = vec![0.0f64; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = a[i * k + p] as f64;
            for j in 0..n {
                want[i * n + j] += x * bm[p * n + j] as f64;
            }
        }
    }
    let energy: f64 = want.iter().map(|w| w * w).sum::<f64>().max(1e-30);
    let ta = b.to_device(&HostTensor::from_slice([m, k], &a)?)?;
    let tb = b.to_device(&HostTensor::from_slice([k, n], &bm)?)?;
    let op = Op::Gemm(GemmSpec::default());
    let before = b.gemm_tiles();
    let mut out = Vec::new();
    for tiles in CANDIDATES {
        let result = (|| -> std::result::Result<f64, String> {
            b.set_gemm_tiles(tiles).map_err(|e| e.to_string())?;
            let y = b.run_op(&op, &[&ta, &tb]).map_err(|e| e.to_string())?;
            let got = b.to_host(&y).map_err(|e| e.to_string())?.to_f32();
            let err: f64 = got.iter().zip(&want).map(|(&g, &w)| (g as f64 - w).powi(2)).sum();
            let nmse = err / energy;
            if nmse.is_nan() || nmse > 1e-10 {
                return Err(format!("wrong result: NMSE {nmse:.2e} against the host product"));
            }
            let t = Instant::now();
            for _ in 0..reps {
                b.launch(&op, &[&ta, &tb], &y).map_err(|e| e.to_string())?;
            }
            b.synchronize().map_err(|e| e.to_string())?;
            Ok(2.0 * (m * n * k * reps) as f64 / t.elapsed().as_secs_f64() / 1e9)
        })();
        out.push(Trial { tiles, result });
    }
    b.set_gemm_tiles(before)?;
    Ok(out)
}

/// The fastest correct trial.
pub fn best(trials: &[Trial]) -> Option<(GemmTiles, f64)> {
    trials.iter().filter_map(|t| t.result.as_ref().ok().map(|&g| (t.tiles, g))).max_by(|x, y| x.1.total_cmp(&y.1))
}

/// The trials of a tuning run and its winner (tiles, GFLOP/s).
pub type Outcome = (Vec<Trial>, Option<(GemmTiles, f64)>);

/// Tune, store the winner for this device and use it from now on. Returns the trials and
/// the winner.
pub fn tune_and_store(b: &OpenClBackend, m: usize, n: usize, k: usize, reps: usize) -> Result<Outcome> {
    let trials = tune_gemm(b, m, n, k, reps)?;
    let win = best(&trials);
    if let Some((tiles, gflops)) = win {
        store(&tuning_file(), &b.device_key(), tiles, gflops)?;
        b.set_gemm_tiles(tiles)?;
    }
    Ok((trials, win))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tuning_file_round_trips_and_keeps_other_devices() {
        let dir = std::env::temp_dir().join(format!("omnifuse-tune-test-{}", std::process::id()));
        let file = dir.join("tuning.txt");
        let t1 = CANDIDATES[0];
        let t2 = CANDIDATES[10];
        store(&file, "dev A | 1.0", t1, 10.0).expect("store");
        store(&file, "dev B | 2.0", t2, 20.0).expect("store");
        store(&file, "dev A | 1.0", t2, 30.0).expect("store");
        assert_eq!(stored(&file, "dev A | 1.0"), Some(t2));
        assert_eq!(stored(&file, "dev B | 2.0"), Some(t2));
        assert_eq!(stored(&file, "dev C | 1.0"), None);
        std::fs::write(&file, "garbage\tgemm\tx y\n").expect("write");
        assert_eq!(stored(&file, "garbage"), None);
        // The first format (no variant) reads as tiled; an unknown variant is no entry.
        std::fs::write(&file, "old\tgemm\t64 64 16 4 4\t3.0\nnew\tgemm\tsystolic 1 2 3 4 5\t9.0\n").expect("w");
        assert_eq!(stored(&file, "old"), Some(GemmTiles::DEFAULT));
        assert_eq!(stored(&file, "new"), None);
        let v = CANDIDATES[CANDIDATES.len() - 1];
        store(&file, "old", v, 50.0).expect("store");
        assert_eq!(stored(&file, "old"), Some(v));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn candidates_are_consistent() {
        for t in CANDIDATES {
            assert!(t.fits(usize::MAX, u64::MAX), "{t:?}");
        }
    }
}
