//! Latency statistics: an HdrHistogram (microseconds, 3 significant digits) summarised as
//! P50/P90/P95/P99/P99.9, mean and max in milliseconds, and a live view (count, QPS, P99) for
//! the progress bar.

use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency percentiles, mean and max, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Mean.
    pub mean: f64,
    /// Largest.
    pub max: f64,
}

/// A latency histogram.
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// An empty histogram (1 µs to 1 hour, 3 significant digits; larger values saturate).
    pub fn new() -> Self {
        // Constant bounds within hdrhistogram's limits (low >= 1, high >= 2·low, 3 digits).
        let hist = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid");
        Latencies { hist }
    }

    /// Record one latency in milliseconds (negative or NaN values count as 0).
    pub fn record_ms(&mut self, ms: f64) {
        let us = if ms.is_finite() && ms > 0.0 { (ms * 1e3).round() as u64 } else { 0 };
        self.hist.saturating_record(us.max(1));
    }

    /// Values recorded.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The value at quantile `q` (0..=1) in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.hist.is_empty() { 0.0 } else { self.hist.value_at_quantile(q) as f64 / 1e3 }
    }

    /// The summary.
    pub fn summary(&self) -> Summary {
        if self.hist.is_empty() {
            return Summary::default();
        }
        Summary {
            p50: self.quantile_ms(0.50),
            p90: self.quantile_ms(0.90),
            p95: self.quantile_ms(0.95),
            p99: self.quantile_ms(0.99),
            p999: self.quantile_ms(0.999),
            mean: self.hist.mean() / 1e3,
            max: self.hist.max() as f64 / 1e3,
        }
    }

    /// A histogram of these latencies over `values`.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut h = Latencies::new();
        for v in values {
            h.record_ms(v);
        }
        h
    }
}

/// What the progress bar shows while a scenario runs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LiveView {
    /// Queries answered.
    pub done: usize,
    /// Seconds since the start.
    pub elapsed_s: f64,
    /// Answered queries per second so far.
    pub qps: f64,
    /// P99 latency so far, in milliseconds.
    pub p99_ms: f64,
}

/// Running latency statistics.
pub struct Live {
    start: Instant,
    hist: Latencies,
}

impl Live {
    /// Start counting now.
    pub fn new() -> Self {
        Live { start: Instant::now(), hist: Latencies::new() }
    }

    /// Record a query's latency and return the view.
    pub fn record(&mut self, ms: f64) -> LiveView {
        self.hist.record_ms(ms);
        let elapsed_s = self.start.elapsed().as_secs_f64();
        let done = self.hist.len() as usize;
        LiveView { done, elapsed_s, qps: done as f64 / elapsed_s.max(1e-9), p99_ms: self.hist.quantile_ms(0.99) }
    }
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        // 1..=1000 ms: P50 = 500, P99 = 990, max = 1000, mean = 500.5 (3 significant digits).
        let h = Latencies::of((1..=1000).map(f64::from));
        let s = h.summary();
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.002 + 0.001;
        assert!(close(s.p50, 500.0), "{s:?}");
        assert!(close(s.p90, 900.0), "{s:?}");
        assert!(close(s.p95, 950.0), "{s:?}");
        assert!(close(s.p99, 990.0), "{s:?}");
        assert!(close(s.p999, 999.0), "{s:?}");
        assert!(close(s.max, 1000.0), "{s:?}");
        assert!(close(s.mean, 500.5), "{s:?}");
        assert_eq!(Latencies::new().summary(), Summary::default());
    }

    #[test]
    fn odd_values_do_not_break_it() {
        let mut h = Latencies::new();
        h.record_ms(f64::NAN);
        h.record_ms(-3.0);
        h.record_ms(1e12);
        assert_eq!(h.len(), 3);
        assert!(h.summary().max > 1e6);
    }
}
