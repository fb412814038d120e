//! The peak search of the server scenario: the highest QPS whose run meets the latency
//! bound. Doubling from a start rate brackets it (halving when the start already fails), then
//! bisection narrows the bracket until its width is within a tolerance of its lower end. The
//! answer is always a rate that was measured to pass.

use serde::{Deserialize, Serialize};

/// One measured rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// The target QPS.
    pub qps: f64,
    /// The QPS achieved.
    pub achieved_qps: f64,
    /// The P99 latency, in milliseconds.
    pub p99_ms: f64,
    /// Whether the run met the bound (and had no failures).
    pub pass: bool,
}

/// The search's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    /// The highest passing QPS found.
    pub qps: f64,
    /// Every probe, in order.
    pub probes: Vec<Probe>,
}

/// The slowest rate tried before giving up.
const FLOOR_QPS: f64 = 0.01;

/// Search from `start` QPS until the bracket is narrower than `tolerance` (relative), with at
/// most `max_probes` runs; `probe` runs the scenario at a rate.
pub fn find(
    start: f64,
    tolerance: f64,
    max_probes: usize,
    mut probe: impl FnMut(f64) -> Result<Probe, String>,
) -> Result<Peak, String> {
    if !(start.is_finite() && start > 0.0) {
        return Err(format!("the peak search needs a positive start QPS, got {start}"));
    }
    if !(tolerance.is_finite() && tolerance > 0.0) {
        return Err(format!("the peak search needs a positive tolerance, got {tolerance}"));
    }
    let (mut lo, mut hi): (Option<f64>, Option<f64>) = (None, None);
    let mut probes = Vec::new();
    let mut q = start;
    while probes.len() < max_probes.max(1) {
        let p = probe(q)?;
        if p.pass {
            lo = Some(lo.map_or(q, |l: f64| l.max(q)));
        } else {
            hi = Some(hi.map_or(q, |h: f64| h.min(q)));
        }
        probes.push(p);
        q = match (lo, hi) {
            (Some(l), None) => l * 2.0,
            (None, Some(h)) if h / 2.0 < FLOOR_QPS => {
                return Err(format!("no rate met the latency bound, down to {h} QPS"));
            }
            (None, Some(h)) => h / 2.0,
            (Some(l), Some(h)) if (h - l) / l <= tolerance => break,
            (Some(l), Some(h)) => (l + h) / 2.0,
            (None, None) => start,
        };
    }
    match lo {
        Some(qps) => Ok(Peak { qps, probes }),
        None => Err(format!("no rate met the latency bound in {} probes", probes.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity(cap: f64) -> impl FnMut(f64) -> Result<Probe, String> {
        move |q| Ok(Probe { qps: q, achieved_qps: q.min(cap), p99_ms: 0.0, pass: q <= cap })
    }

    #[test]
    fn converges_on_a_known_capacity_from_either_side() {
        for start in [1.0, 137.0, 5000.0] {
            let p = find(start, 0.02, 40, capacity(137.0)).unwrap();
            assert!(p.qps <= 137.0 && p.qps >= 137.0 / 1.02, "from {start}: {}", p.qps);
            assert!(p.probes.iter().any(|x| x.qps == p.qps && x.pass), "the answer was measured to pass");
        }
    }

    #[test]
    fn gives_up_clearly() {
        let e = find(10.0, 0.05, 40, capacity(0.0)).unwrap_err();
        assert!(e.contains("no rate met"), "{e}");
        let e = find(10.0, 0.05, 2, capacity(1.0)).unwrap_err();
        assert!(e.contains("2 probes"), "{e}");
        assert!(find(0.0, 0.05, 2, capacity(1.0)).unwrap_err().contains("positive start"));
        // Out of probes with a passing rate: the best so far.
        let p = find(1.0, 0.001, 3, capacity(100.0)).unwrap();
        assert_eq!(p.qps, 4.0);
    }
}
