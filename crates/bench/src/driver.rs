//! Drives a [`Target`] through the dynamic batcher of `omnifuse-serve`: each submitted job
//! names a request of the pool and its scheduled send time; the executor runs a batch on the
//! target and stamps when the batch started and ended, so latency is counted from the
//! scheduled time whatever the queue did. Batching off is the same path with at most one
//! request per batch. Each job joins the group of its request's modality mix, so a policy
//! with same-modality grouping on batches requests of one mix together.

use std::sync::Arc;
use std::time::{Duration, Instant};

use omnifuse_model::input::mix_key;
use omnifuse_serve::{BatchPolicy, Batcher, Outcome, Ticket};

use crate::record::Sample;
use crate::target::{Completion, Target};
use crate::workload::Request;

/// One request on its way: which one, and when it was due to be sent.
pub struct Job {
    /// Index into the pool.
    pub request: usize,
    /// Its scheduled send time.
    pub scheduled: Instant,
}

/// A job's answer.
pub struct Finished {
    started: Instant,
    ended: Instant,
    batch: usize,
    outcome: Result<Completion, String>,
}

/// The batcher settings for batching on (`max_batch` requests, closing after `max_delay`) or
/// off (one request per batch). Tokens are not budgeted: every request counts as one.
pub fn policy(batching: bool, max_batch: usize, max_delay: Duration) -> BatchPolicy {
    let max_batch = if batching { max_batch.max(1) } else { 1 };
    BatchPolicy {
        max_batch,
        max_tokens: max_batch,
        max_delay: if batching { max_delay } else { Duration::ZERO },
        queue_capacity: 1 << 20,
        preferred_sizes: Vec::new(),
        grouping: false,
    }
}

/// The target behind a batcher.
pub struct Driver {
    batcher: Batcher<Job, Finished>,
    /// Each pool request's modality mix ([`omnifuse_model::input::mix_key`]), the group it
    /// joins when the policy groups by mix.
    mixes: Vec<u64>,
}

impl Driver {
    /// Start a batcher with `policy` over `target`, answering requests from `pool`.
    pub fn new(target: Arc<dyn Target>, pool: Arc<Vec<Request>>, policy: BatchPolicy) -> Result<Self, String> {
        let mixes = pool.iter().map(|r| mix_key(r)).collect();
        let exec = move |jobs: Vec<Job>| {
            let started = Instant::now();
            let batch: Vec<&Request> = jobs.iter().filter_map(|j| pool.get(j.request)).collect();
            let mut out = if batch.len() == jobs.len() {
                target.run_batch(&batch)
            } else {
                vec![Err("a job named a request outside the pool".to_string()); jobs.len()]
            };
            let ended = Instant::now();
            if out.len() != jobs.len() {
                let msg = format!("the target answered {} of a batch of {}", out.len(), jobs.len());
                out = vec![Err(msg); jobs.len()];
            }
            let n = jobs.len();
            out.into_iter().map(|outcome| Finished { started, ended, batch: n, outcome }).collect()
        };
        let batcher = Batcher::new(policy, exec).map_err(|e| e.to_string())?;
        Ok(Driver { batcher, mixes })
    }

    /// Submit request `request`, due at `scheduled`.
    pub fn submit(&self, request: usize, scheduled: Instant) -> Pending {
        let mix = self.mixes.get(request).copied().unwrap_or(0);
        match self.batcher.submit_in_group(Job { request, scheduled }, 1, 0, None, mix) {
            Ok(ticket) => Pending { request, scheduled, ticket: Ok(ticket) },
            Err(e) => Pending { request, scheduled, ticket: Err(format!("refused: {e}")) },
        }
    }

    /// The size of every batch run so far.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.batcher.batch_sizes()
    }
}

/// A submitted request.
pub struct Pending {
    request: usize,
    scheduled: Instant,
    ticket: Result<Ticket<Finished>, String>,
}

impl Pending {
    /// Wait for the answer; times are taken relative to `origin` (the start of the run).
    pub fn wait(self, origin: Instant) -> Sample {
        let scheduled_s = self.scheduled.saturating_duration_since(origin).as_secs_f64();
        let ms = |a: Instant| a.saturating_duration_since(self.scheduled).as_secs_f64() * 1e3;
        let lost = |why: String| Sample {
            request: self.request,
            scheduled_s,
            latency_ms: ms(Instant::now()),
            queue_ms: 0.0,
            batch: 0,
            outcome: Err(why),
        };
        match self.ticket {
            Err(why) => lost(why),
            Ok(t) => match t.wait() {
                Outcome::Done(f) => Sample {
                    request: self.request,
                    scheduled_s,
                    latency_ms: ms(f.ended),
                    queue_ms: ms(f.started),
                    batch: f.batch,
                    outcome: f.outcome,
                },
                Outcome::TimedOut => lost("timed out in the queue".into()),
                Outcome::Failed(why) => lost(why),
            },
        }
    }
}
