//! The multi-stream scenario: each query is `samples` requests sent together through the
//! dynamic batcher; the next query is sent when every sample of the last one is answered. A
//! query's latency is that of its slowest sample. The figure is the P99 query latency.

use std::sync::Arc;
use std::time::Instant;

use omnifuse_serve::BatchPolicy;

use crate::driver::Driver;
use crate::latency::Live;
use crate::record::Run;
use crate::scenario::{Progress, Settings};
use crate::schedule;
use crate::target::Target;
use crate::workload::Request;

/// Run queries of `samples` requests until the duration and query count of `settings` are met.
pub fn run(
    target: Arc<dyn Target>,
    pool: Arc<Vec<Request>>,
    policy: BatchPolicy,
    samples: usize,
    settings: &Settings,
    progress: Progress<'_>,
) -> Result<Run, String> {
    if samples == 0 {
        return Err("the multi-stream scenario needs at least 1 sample per query, got 0".into());
    }
    if pool.is_empty() {
        return Err("the multi-stream scenario needs at least one request".into());
    }
    let n = pool.len();
    let driver = Driver::new(target, pool, policy)?;
    let mut live = Live::new();
    let mut run = Run::default();
    let origin = Instant::now();
    let mut q = 0usize;
    while origin.elapsed().as_secs_f64() < settings.duration_s || q < settings.min_queries {
        let picks = schedule::picks(samples, n, settings.seed.wrapping_add(q as u64));
        let sent = Instant::now();
        let pending: Vec<_> = picks.iter().map(|&r| driver.submit(r, sent)).collect();
        let answered: Vec<_> = pending.into_iter().map(|p| p.wait(origin)).collect();
        if answered.iter().all(|s| s.outcome.is_ok()) {
            let latency = answered.iter().map(|s| s.latency_ms).fold(0.0, f64::max);
            progress(&live.record(latency));
            run.query_latencies_ms.push(latency);
        }
        run.samples.extend(answered);
        q += 1;
    }
    run.duration_s = origin.elapsed().as_secs_f64();
    run.batch_sizes = driver.batch_sizes();
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::policy;
    use crate::fake::FakeTarget;
    use omnifuse_model::input::RawInput;
    use std::time::Duration;

    #[test]
    fn a_query_is_its_samples_and_waits_for_the_slowest() {
        let target = Arc::new(FakeTarget::new(Duration::from_millis(1)));
        let pool: Arc<Vec<Request>> = Arc::new((0..5).map(|i| vec![RawInput::Text(format!("r{i}"))]).collect());
        let s = Settings { duration_s: 0.0, min_queries: 6, seed: 1 };
        // Batching off: four batches of one per query, run one after another, so each query
        // takes at least 4 ms.
        let run = run(target.clone(), pool.clone(), policy(false, 1, Duration::ZERO), 4, &s, &|_| {}).unwrap();
        assert_eq!(run.queries(), 6);
        assert_eq!(run.samples.len(), 24);
        assert!(run.query_latencies_ms.iter().all(|&l| l >= 4.0), "{:?}", run.query_latencies_ms);
        assert_eq!(run.batch_sizes.len(), 24);
        // Batching on with room for the whole query: fewer, larger batches.
        let run = super::run(target, pool, policy(true, 8, Duration::from_millis(2)), 4, &s, &|_| {}).unwrap();
        assert!(run.batch_sizes.len() < 24 && run.batch_sizes.iter().any(|&b| b > 1), "{:?}", run.batch_sizes);
    }
}
