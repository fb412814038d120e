//! criterion micro-benchmarks of omnifuse kernels, one file per kernel family beside this
//! one; each measures our kernel next to a well-known peer or the reference tier in the same
//! run. Run with `cargo bench -p omnifuse-benches`.

/// Deterministic values in `[-1, 1)` for benchmark inputs.
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = omnifuse_testkit::cases::Rng::new(seed);
    (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
}
