//! The single-stream scenario: one query of one request at a time, the next sent when the
//! last is answered, straight to the target (no batcher: there is never anything to batch).
//! The figure is the P90 latency.

use std::time::Instant;

use crate::latency::Live;
use crate::record::{Run, Sample};
use crate::scenario::{Progress, Settings};
use crate::schedule;
use crate::target::Target;
use crate::workload::Request;

/// Run until both the duration and the query count of `settings` are reached.
pub fn run(target: &dyn Target, pool: &[Request], settings: &Settings, progress: Progress<'_>) -> Result<Run, String> {
    if pool.is_empty() {
        return Err("the single-stream scenario needs at least one request".into());
    }
    let mut live = Live::new();
    let mut run = Run::default();
    let origin = Instant::now();
    // Picks are drawn in blocks so the sequence is the same however long the run lasts.
    let mut picks = Vec::new();
    let mut i = 0usize;
    while origin.elapsed().as_secs_f64() < settings.duration_s || i < settings.min_queries {
        if i == picks.len() {
            picks.extend(schedule::picks(1024, pool.len(), settings.seed.wrapping_add(i as u64)));
        }
        let request = picks[i];
        let sent = Instant::now();
        let outcome = target.run_batch(&[&pool[request]]).pop().unwrap_or_else(|| Err("no answer".into()));
        let latency_ms = sent.elapsed().as_secs_f64() * 1e3;
        if outcome.is_ok() {
            progress(&live.record(latency_ms));
            run.query_latencies_ms.push(latency_ms);
        }
        let scheduled_s = sent.saturating_duration_since(origin).as_secs_f64();
        run.samples.push(Sample { request, scheduled_s, latency_ms, queue_ms: 0.0, batch: 1, outcome });
        run.batch_sizes.push(1);
        i += 1;
    }
    run.duration_s = origin.elapsed().as_secs_f64();
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeTarget;
    use omnifuse_model::input::RawInput;
    use std::time::Duration;

    #[test]
    fn runs_one_at_a_time_until_both_minimums_are_met() {
        let target = FakeTarget::new(Duration::from_millis(1));
        let pool: Vec<Request> = (0..3).map(|i| vec![RawInput::Text(format!("r{i}"))]).collect();
        let s = Settings { duration_s: 0.0, min_queries: 25, seed: 1 };
        let run = run(&target, &pool, &s, &|_| {}).unwrap();
        assert_eq!(run.samples.len(), 25);
        assert_eq!(target.calls(), 25);
        // Each answer took at least the target's 1 ms.
        assert!(run.query_latencies_ms.iter().all(|&l| l >= 1.0));
        let s = Settings { duration_s: 0.05, min_queries: 1, seed: 1 };
        let run = super::run(&target, &pool, &s, &|_| {}).unwrap();
        assert!(run.duration_s >= 0.05 && run.samples.len() >= 2);
    }

    #[test]
    fn failures_are_kept_but_not_timed() {
        let target = FakeTarget { fail_text: Some("bad".into()), ..FakeTarget::default() };
        let pool: Vec<Request> = vec![vec![RawInput::Text("bad".into())], vec![RawInput::Text("good".into())]];
        let s = Settings { duration_s: 0.0, min_queries: 40, seed: 3 };
        let run = run(&target, &pool, &s, &|_| {}).unwrap();
        assert!(run.failed() > 0 && run.failed() < 40);
        assert_eq!(run.queries() + run.failed(), 40);
    }
}
