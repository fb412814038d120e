//! Peak f32 throughput, measured rather than assumed: every pool thread runs a loop of
//! independent FMA chains in the widest SIMD the CPU has (enough chains to cover the FMA
//! latency on two ports), and the total rate is the estimate. On shared machines the rate
//! changes from moment to moment, so benchmarks interleave [`probe`] with their timed runs
//! and compare against the peak available at that time.

use std::time::Instant;

const CHAINS: usize = 12;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_avx512(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let m = _mm512_set1_ps(0.999_999);
    let a = _mm512_set1_ps(1e-7);
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm512_fmadd_ps(*r, m, a);
        }
    }
    acc.iter().map(|&r| _mm512_reduce_add_ps(r)).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_avx2(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let m = _mm256_set1_ps(0.999_999);
    let a = _mm256_set1_ps(1e-7);
    let mut acc = [_mm256_set1_ps(1.0); CHAINS];
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm256_fmadd_ps(*r, m, a);
        }
    }
    let mut out = [0.0f32; 8];
    let mut s = _mm256_setzero_ps();
    for r in acc {
        s = _mm256_add_ps(s, r);
    }
    // SAFETY: `out` holds 8 f32, the width of one unaligned 256-bit store.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
    out.iter().sum()
}

fn fma_portable(iters: usize) -> f32 {
    let mut acc = [[1.0f32; 8]; CHAINS];
    for _ in 0..iters {
        for r in acc.iter_mut() {
            for l in r.iter_mut() {
                *l = l.mul_add(0.999_999, 1e-7);
            }
        }
    }
    acc.iter().flatten().sum()
}

/// One thread's loop: flops done, a value to keep the work alive, and the instruction mix.
fn run(iters: usize) -> (f64, f32, &'static str) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            let s = unsafe { fma_avx512(iters) };
            return ((iters * CHAINS * 16 * 2) as f64, s, "avx512 FMA");
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            let s = unsafe { fma_avx2(iters) };
            return ((iters * CHAINS * 8 * 2) as f64, s, "avx2 FMA");
        }
    }
    let s = fma_portable(iters);
    ((iters * CHAINS * 8 * 2) as f64, s, "portable mul_add")
}

/// One short probe (a few milliseconds) on every thread of `pool` at once: GFLOP/s and the
/// instruction mix used.
pub fn probe(pool: &rayon::ThreadPool) -> (f64, &'static str) {
    let iters = 1_000_000;
    let start = Instant::now();
    let results: Vec<(f64, f32, &'static str)> = pool.broadcast(|_| run(iters));
    let secs = start.elapsed().as_secs_f64();
    let flops: f64 = results.iter().map(|r| r.0).sum();
    std::hint::black_box(results.iter().map(|r| r.1).sum::<f32>());
    (flops / secs / 1e9, results.first().map_or("", |r| r.2))
}

/// Estimated peak GFLOP/s of `pool`: the best of several probes after a warm-up (about 50 ms).
pub fn measure(pool: &rayon::ThreadPool) -> (f64, &'static str) {
    probe(pool);
    (0..8).map(|_| probe(pool)).fold((0.0, ""), |best, p| if p.0 > best.0 { p } else { best })
}
