//! The server scenario: queries arrive as a seeded Poisson process at a target rate and go
//! through the dynamic batcher. Each query's latency is counted from its *scheduled* send
//! time, not from when it was actually sent, so a stall of the target (or of the sender)
//! shows in the latency of every query that should have been sent during it: coordinated
//! omission cannot hide it.

use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use omnifuse_serve::BatchPolicy;

use crate::driver::{Driver, Pending};
use crate::latency::Live;
use crate::record::Run;
use crate::scenario::{Progress, Settings};
use crate::schedule;
use crate::target::Target;
use crate::workload::Request;

/// Run the server scenario at `qps` (positive, finite).
pub fn run(
    target: Arc<dyn Target>,
    pool: Arc<Vec<Request>>,
    policy: BatchPolicy,
    qps: f64,
    settings: &Settings,
    progress: Progress<'_>,
) -> Result<Run, String> {
    if !(qps.is_finite() && qps > 0.0) {
        return Err(format!("the server scenario needs a positive QPS, got {qps}"));
    }
    if pool.is_empty() {
        return Err("the server scenario needs at least one request".into());
    }
    let times = schedule::poisson(qps, settings.duration_s, settings.min_queries, settings.seed);
    let picks = schedule::picks(times.len(), pool.len(), settings.seed);
    let driver = Driver::new(target, pool, policy)?;
    let live = Mutex::new(Live::new());
    let origin = Instant::now();
    let (tx, rx) = mpsc::channel::<Pending>();
    let samples = std::thread::scope(|scope| {
        let collector = scope.spawn(|| {
            let mut samples = Vec::new();
            for pending in rx {
                let s = pending.wait(origin);
                if s.outcome.is_ok() {
                    let view = live.lock().map(|mut l| l.record(s.latency_ms)).ok();
                    if let Some(v) = view {
                        progress(&v);
                    }
                }
                samples.push(s);
            }
            samples
        });
        for (t, &request) in times.iter().zip(&picks) {
            let due = origin + Duration::from_secs_f64(*t);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if tx.send(driver.submit(request, due)).is_err() {
                break;
            }
        }
        drop(tx);
        collector.join().unwrap_or_default()
    });
    let duration_s = origin.elapsed().as_secs_f64();
    let query_latencies_ms = samples.iter().filter(|s| s.outcome.is_ok()).map(|s| s.latency_ms).collect();
    Ok(Run { samples, query_latencies_ms, duration_s, batch_sizes: driver.batch_sizes() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::policy;
    use crate::fake::FakeTarget;
    use omnifuse_model::input::RawInput;

    fn pool() -> Arc<Vec<Request>> {
        Arc::new((0..4).map(|i| vec![RawInput::Text(format!("request {i}"))]).collect())
    }

    #[test]
    fn every_scheduled_query_is_sent_once_in_schedule_order() {
        let target = Arc::new(FakeTarget::new(Duration::from_micros(200)));
        let s = Settings { duration_s: 0.3, min_queries: 20, seed: 9 };
        let run = run(target.clone(), pool(), policy(false, 1, Duration::ZERO), 200.0, &s, &|_| {}).unwrap();
        let want = schedule::poisson(200.0, 0.3, 20, 9);
        assert_eq!(run.samples.len(), want.len());
        for (sample, t) in run.samples.iter().zip(&want) {
            assert!((sample.scheduled_s - t).abs() < 1e-6);
            assert!(sample.latency_ms >= sample.queue_ms && sample.outcome.is_ok());
        }
        assert_eq!(run.batch_sizes.iter().sum::<usize>(), want.len());
        assert!(run.batch_sizes.iter().all(|&b| b == 1), "batching off: batches of one");
        assert_eq!(target.calls(), want.len());
    }

    #[test]
    fn a_stall_shows_in_the_latency_of_every_query_scheduled_during_it() {
        // The first batch stalls 300 ms while queries keep being due every ~10 ms. Measured from
        // the scheduled time, each of them waited until the stall ended; only lower bounds are
        // asserted, so a slow machine cannot make this fail.
        let target = Arc::new(FakeTarget {
            per_request: Duration::from_micros(100),
            stall: Some((0, Duration::from_millis(300))),
            ..FakeTarget::default()
        });
        let s = Settings { duration_s: 0.6, min_queries: 0, seed: 1 };
        let run = run(target, pool(), policy(false, 1, Duration::ZERO), 100.0, &s, &|_| {}).unwrap();
        let first = run.samples[0].scheduled_s;
        let during: Vec<_> = run.samples.iter().filter(|x| x.scheduled_s < first + 0.25).collect();
        assert!(during.len() >= 5, "{} queries during the stall", during.len());
        for x in &during {
            let stall_left_ms = (first + 0.3 - x.scheduled_s) * 1e3;
            assert!(
                x.latency_ms >= stall_left_ms - 1.0,
                "scheduled {:.3}s: latency {:.1} ms < {:.1} ms left of the stall",
                x.scheduled_s,
                x.latency_ms,
                stall_left_ms
            );
        }
        let mut sorted = run.query_latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        assert!(sorted.last().copied().unwrap_or(0.0) >= 299.0);
    }

    #[test]
    fn batching_on_groups_queued_requests() {
        // 2 ms per batch plus 0.1 ms per request at 1000 QPS: batches of one cannot keep up, so
        // requests queue and batches grow.
        let target = Arc::new(FakeTarget {
            per_batch: Duration::from_millis(2),
            per_request: Duration::from_micros(100),
            ..FakeTarget::default()
        });
        let s = Settings { duration_s: 0.3, min_queries: 0, seed: 2 };
        let run = run(target, pool(), policy(true, 16, Duration::from_millis(1)), 1000.0, &s, &|_| {}).unwrap();
        assert!(run.batch_sizes.iter().any(|&b| b > 1), "{:?}", run.batch_sizes);
        assert!(run.batch_sizes.iter().all(|&b| b <= 16));
        assert_eq!(run.batch_sizes.iter().sum::<usize>(), run.samples.len());
    }

    #[test]
    fn a_bad_rate_is_an_error() {
        let target = Arc::new(FakeTarget::default());
        let s = Settings { duration_s: 0.1, min_queries: 0, seed: 1 };
        let e = run(target, pool(), policy(false, 1, Duration::ZERO), 0.0, &s, &|_| {}).unwrap_err();
        assert!(e.contains("positive QPS"), "{e}");
    }
}
