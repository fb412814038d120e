//! When queries are sent: Poisson arrivals for the server scenario (exponential gaps at a
//! mean rate, from a seeded ChaCha8 generator, so a seed replays the same schedule) and the
//! seeded order in which queries pick requests from the pool.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Send times in seconds from the start: Poisson arrivals at `qps`, the last one after
/// `duration_s` seconds and at least `min_queries` queries (whichever is longer). `qps` must be
/// positive and finite (the caller checks).
pub fn poisson(qps: f64, duration_s: f64, min_queries: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t = 0.0f64;
    let mut out = Vec::new();
    loop {
        // Inverse-CDF sampling of an exponential gap; 1 - u is in (0, 1], so ln is finite.
        let u: f64 = rng.random();
        t += -(1.0 - u).ln() / qps;
        out.push(t);
        // The last query is due after the duration, so the run lasts at least that long.
        if t > duration_s && out.len() >= min_queries {
            return out;
        }
    }
}

/// Which request of a pool of `pool` each of `n` queries sends: a seeded uniform draw.
pub fn picks(n: usize, pool: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    (0..n).map(|_| if pool == 0 { 0 } else { rng.random_range(0..pool) }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_arrivals_are_seeded_sorted_and_at_the_asked_rate() {
        let a = poisson(200.0, 50.0, 0, 3);
        assert_eq!(a, poisson(200.0, 50.0, 0, 3), "same seed, same schedule");
        assert_ne!(a, poisson(200.0, 50.0, 0, 4), "another seed, another schedule");
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        // 10 000 expected; the count of a Poisson process has sd 100.
        assert!((9_500..=10_500).contains(&a.len()), "{} arrivals", a.len());
        // Exponential gaps: the coefficient of variation is 1.
        let gaps: Vec<f64> = a.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
        assert!((sd / mean - 1.0).abs() < 0.05, "cv {}", sd / mean);
    }

    #[test]
    fn the_minimum_query_count_extends_the_schedule() {
        let a = poisson(10.0, 0.1, 500, 1);
        assert_eq!(a.len(), 500);
        assert!(*a.last().unwrap_or(&0.0) > 10.0);
        let b = poisson(10.0, 3.0, 0, 1);
        assert!(b[b.len() - 1] > 3.0 && b[b.len() - 2] <= 3.0, "the last arrival is the first past the duration");
    }

    #[test]
    fn picks_cover_the_pool_and_replay() {
        let p = picks(1000, 7, 5);
        assert_eq!(p, picks(1000, 7, 5));
        assert!((0..7).all(|i| p.contains(&i)));
        assert!(p.iter().all(|&i| i < 7));
    }
}
