//! A target whose service time is known: it sleeps a fixed time per batch plus a fixed time
//! per request, and can stall once. Scenario tests use it to check scheduling, latency
//! accounting and the peak search without a model.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::target::{Completion, Target};
use crate::workload::Request;

/// A target with a known cost.
#[derive(Debug, Default)]
pub struct FakeTarget {
    /// Sleep per batch.
    pub per_batch: Duration,
    /// Sleep per request of a batch.
    pub per_request: Duration,
    /// An extra sleep on the batch with this call index (0-based), once.
    pub stall: Option<(usize, Duration)>,
    /// Requests whose first input is this text fail.
    pub fail_text: Option<String>,
    /// Batches run so far (start it at 0).
    pub calls: AtomicUsize,
}

impl FakeTarget {
    /// A target that takes `per_request` per request and nothing else.
    pub fn new(per_request: Duration) -> Self {
        FakeTarget { per_request, ..FakeTarget::default() }
    }

    /// Batches run so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }
}

impl Target for FakeTarget {
    fn describe(&self) -> String {
        format!("fake ({:?} per batch, {:?} per request)", self.per_batch, self.per_request)
    }

    fn run_batch(&self, batch: &[&Request]) -> Vec<Result<Completion, String>> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let mut sleep = self.per_batch + self.per_request * batch.len() as u32;
        if let Some((at, extra)) = self.stall
            && at == call
        {
            sleep += extra;
        }
        std::thread::sleep(sleep);
        let ms = sleep.as_secs_f64() * 1e3;
        batch
            .iter()
            .map(|r| {
                let failing = match (r.first(), &self.fail_text) {
                    (Some(omnifuse_model::input::RawInput::Text(t)), Some(f)) => t == f,
                    _ => false,
                };
                if failing {
                    Err("the fake target fails this request".to_string())
                } else {
                    Ok(Completion { stages_ms: [("total".to_string(), ms)].into(), cache: None })
                }
            })
            .collect()
    }
}
