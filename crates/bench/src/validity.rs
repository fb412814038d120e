//! The validity verdict, as LoadGen gives one: a run is valid when it lasted its minimum
//! duration, answered its minimum number of queries, had no failures, and (server scenario)
//! met its latency bound at P99, including the early-stopping estimate when there are enough
//! queries for one. Every check says what was measured against what was required.

use serde::{Deserialize, Serialize};

use crate::early_stop::{self, Estimate};
use crate::latency::Latencies;
use crate::record::Run;

/// One check of the verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// Measured against required.
    pub detail: String,
}

/// What a run must meet.
#[derive(Clone, Debug, PartialEq)]
pub struct Criteria {
    /// Shortest run, in seconds (`None`: not checked, as in the offline scenario).
    pub min_duration_s: Option<f64>,
    /// Fewest queries.
    pub min_queries: usize,
    /// The quantile the scenario is judged on (0.9 single-stream, 0.99 otherwise).
    pub quantile: f64,
    /// Latency bound at that quantile, in milliseconds (`None`: none).
    pub latency_bound_ms: Option<f64>,
}

/// The confidence of the early-stopping estimate.
pub const CONFIDENCE: f64 = 0.99;

/// The verdict: valid, the checks, and the early-stopping estimate.
pub fn verdict(run: &Run, c: &Criteria) -> (bool, Vec<Check>, Estimate) {
    let mut checks = Vec::new();
    let mut check = |name: &str, ok: bool, detail: String| checks.push(Check { name: name.into(), ok, detail });
    if let Some(min) = c.min_duration_s {
        check("duration", run.duration_s >= min, format!("{:.2} s (minimum {min} s)", run.duration_s));
    }
    check("queries", run.queries() >= c.min_queries, format!("{} answered (minimum {})", run.queries(), c.min_queries));
    let failed = run.failed();
    check("failures", failed == 0, format!("{failed} failed requests (allowed 0)"));
    let pct = format!("P{}", (c.quantile * 100.0 * 10.0).round() / 10.0);
    let measured = Latencies::of(run.query_latencies_ms.iter().copied()).quantile_ms(c.quantile);
    let est = early_stop::estimate(&run.query_latencies_ms, c.quantile, CONFIDENCE);
    let conf = format!("{}%", CONFIDENCE * 100.0);
    match c.latency_bound_ms {
        Some(bound) => {
            check("latency bound", measured <= bound, format!("{pct} {measured:.2} ms (bound {bound} ms)"));
            match est.bound_ms {
                Some(b) => check(
                    "early stopping",
                    b <= bound,
                    format!("{pct} ≤ {b:.2} ms with {conf} confidence (bound {bound} ms)"),
                ),
                None => check(
                    "early stopping",
                    true,
                    format!("no estimate: {} queries, {} needed (not required)", run.queries(), est.min_samples),
                ),
            }
        }
        None => match est.bound_ms {
            Some(b) => check("early stopping", true, format!("{pct} ≤ {b:.2} ms with {conf} confidence")),
            None => check(
                "early stopping",
                true,
                format!("no estimate: {} queries, {} needed (not required)", run.queries(), est.min_samples),
            ),
        },
    }
    let valid = checks.iter().all(|x| x.ok);
    (valid, checks, est)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Sample;

    fn run_of(latencies: &[f64], duration_s: f64, failed: usize) -> Run {
        let ok = latencies.iter().map(|&l| Sample {
            request: 0,
            scheduled_s: 0.0,
            latency_ms: l,
            queue_ms: 0.0,
            batch: 1,
            outcome: Ok(Default::default()),
        });
        let bad = (0..failed).map(|_| Sample {
            request: 0,
            scheduled_s: 0.0,
            latency_ms: 0.0,
            queue_ms: 0.0,
            batch: 1,
            outcome: Err("x".into()),
        });
        Run {
            samples: ok.chain(bad).collect(),
            query_latencies_ms: latencies.to_vec(),
            duration_s,
            batch_sizes: vec![],
        }
    }

    fn criteria(bound: Option<f64>) -> Criteria {
        Criteria { min_duration_s: Some(1.0), min_queries: 100, quantile: 0.99, latency_bound_ms: bound }
    }

    #[test]
    fn each_requirement_can_fail_on_its_own() {
        let fast: Vec<f64> = vec![10.0; 1000];
        assert!(verdict(&run_of(&fast, 2.0, 0), &criteria(Some(200.0))).0);
        let (ok, checks, _) = verdict(&run_of(&fast, 0.5, 0), &criteria(Some(200.0)));
        assert!(!ok && checks.iter().any(|c| c.name == "duration" && !c.ok && c.detail.contains("minimum 1 s")));
        let (ok, checks, _) = verdict(&run_of(&fast[..50], 2.0, 0), &criteria(Some(200.0)));
        assert!(!ok && checks.iter().any(|c| c.name == "queries" && !c.ok));
        let (ok, checks, _) = verdict(&run_of(&fast, 2.0, 1), &criteria(Some(200.0)));
        assert!(!ok && checks.iter().any(|c| c.name == "failures" && !c.ok));
        let mut slow = fast.clone();
        slow[..20].iter_mut().for_each(|l| *l = 500.0);
        let (ok, checks, _) = verdict(&run_of(&slow, 2.0, 0), &criteria(Some(200.0)));
        assert!(!ok && checks.iter().any(|c| c.name == "latency bound" && !c.ok), "{checks:?}");
        // Without a bound, slow is still valid.
        assert!(verdict(&run_of(&slow, 2.0, 0), &criteria(None)).0);
    }

    #[test]
    fn early_stopping_can_fail_a_run_whose_measured_p99_passes() {
        // 1000 queries, 9 over the bound: the measured P99 passes, but the 99%-confident
        // estimate of P99 lies among the slow ones.
        let mut l = vec![10.0; 1000];
        l[..9].iter_mut().for_each(|x| *x = 500.0);
        let (ok, checks, est) = verdict(&run_of(&l, 2.0, 0), &criteria(Some(200.0)));
        assert!(checks.iter().any(|c| c.name == "latency bound" && c.ok), "{checks:?}");
        assert_eq!(est.bound_ms, Some(500.0));
        assert!(!ok);
    }
}
