//! The early-stopping estimate (as MLPerf LoadGen gives it): from `n` measured latencies, the
//! smallest order statistic that bounds the true `p`-quantile with the given confidence. The
//! true quantile lies below the `j`-th smallest of `n` samples with probability
//! `P(Binomial(n, p) < j)`; the estimate is the `j`-th smallest for the least `j` where that
//! reaches the confidence. Too few samples (that `j` would exceed `n`) give no estimate, and
//! the number of samples that would be needed is reported instead.

use serde::{Deserialize, Serialize};

/// The estimate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The quantile estimated (e.g. 0.99).
    pub quantile: f64,
    /// The confidence (e.g. 0.99).
    pub confidence: f64,
    /// The bound in milliseconds, or `None` when there are too few samples.
    pub bound_ms: Option<f64>,
    /// Fewest samples for which an estimate exists.
    pub min_samples: usize,
}

/// The largest number of samples that may lie above the estimate: the largest `s` with
/// `P(Binomial(n, 1 - p) <= s) <= 1 - confidence`, or `None` when even `s = 0` fails.
fn samples_above(n: usize, p: f64, confidence: f64) -> Option<usize> {
    let q = 1.0 - p;
    let alpha = 1.0 - confidence;
    let nf = n as f64;
    // log P(m = 0) = n ln p; then P(m = s + 1) = P(m = s) · (n - s)/(s + 1) · q/p.
    let mut log_pmf = nf * p.ln();
    let mut cdf = 0.0f64;
    let step = (q / p).ln();
    let mut best = None;
    for s in 0..=n {
        cdf += log_pmf.exp();
        if cdf > alpha {
            return best;
        }
        best = Some(s);
        log_pmf += ((nf - s as f64) / (s as f64 + 1.0)).ln() + step;
    }
    best
}

/// The fewest samples for which [`estimate`] gives a bound: `p^n <= 1 - confidence`.
pub fn min_samples(p: f64, confidence: f64) -> usize {
    ((1.0 - confidence).ln() / p.ln()).ceil().max(1.0) as usize
}

/// Estimate the `p`-quantile of `latencies_ms` with `confidence` (both in (0, 1)).
pub fn estimate(latencies_ms: &[f64], p: f64, confidence: f64) -> Estimate {
    let mut sorted: Vec<f64> = latencies_ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let bound_ms =
        if n == 0 { None } else { samples_above(n, p, confidence).and_then(|s| sorted.get(n - 1 - s).copied()) };
    Estimate { quantile: p, confidence, bound_ms, min_samples: min_samples(p, confidence) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_459_samples_for_p99_at_99_percent() {
        assert_eq!(min_samples(0.99, 0.99), 459);
        let lat: Vec<f64> = (1..=458).map(f64::from).collect();
        assert_eq!(estimate(&lat, 0.99, 0.99).bound_ms, None);
        let lat: Vec<f64> = (1..=459).map(f64::from).collect();
        // 0.99^459 < 0.01, but adding P(m = 1) overshoots: only the maximum bounds P99.
        assert_eq!(estimate(&lat, 0.99, 0.99).bound_ms, Some(459.0));
    }

    #[test]
    fn the_estimate_is_conservative_and_approaches_the_quantile() {
        let lat: Vec<f64> = (1..=100_000).map(f64::from).collect();
        let e = estimate(&lat, 0.99, 0.99).bound_ms.unwrap_or(0.0);
        // The true P99 is 99 000; the normal approximation puts the bound about
        // 2.33·sqrt(n p q) ≈ 73 samples above it.
        assert!(e > 99_000.0 && e < 99_150.0, "{e}");
        let e90 = estimate(&lat, 0.90, 0.99).bound_ms.unwrap_or(0.0);
        assert!(e90 > 90_000.0 && e90 < 90_300.0, "{e90}");
    }

    #[test]
    fn empty_input_has_no_estimate() {
        assert_eq!(estimate(&[], 0.9, 0.99).bound_ms, None);
    }
}
