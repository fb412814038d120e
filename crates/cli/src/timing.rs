//! Timing: warm up, then repeat until enough time or repetitions have passed, and report
//! the median (machines are shared and noisy; a median of many beats a lone best or mean).

use std::time::{Duration, Instant};

use omnifuse_core::Result;

/// Median wall time of `f` in milliseconds over `reps` runs after `warmup` runs; `reps = 0`
/// picks a count that fills about `budget` (at least 5, at most 200).
pub fn median_ms(warmup: usize, reps: usize, budget: Duration, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut first = Duration::ZERO;
    for i in 0..warmup.max(1) {
        let t = Instant::now();
        f()?;
        if i == 0 {
            first = t.elapsed();
        }
    }
    let reps =
        if reps > 0 { reps } else { (budget.as_secs_f64() / first.as_secs_f64().max(1e-6)).clamp(5.0, 200.0) as usize };
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let n = times.len();
    Ok(if n % 2 == 1 { times[n / 2] } else { 0.5 * (times[n / 2 - 1] + times[n / 2]) })
}
