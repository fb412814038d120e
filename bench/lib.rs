//! criterion micro-benchmarks of omnifuse kernels, one file per kernel family beside this
//! one; each measures our kernel next to a well-known peer or the reference tier in the same
//! run. Run with `cargo bench -p omnifuse-benches`.

/// Deterministic values in `[-1, 1)` for benchmark inputs.
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
