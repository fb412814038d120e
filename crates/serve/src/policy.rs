//! When a batch closes, and how much may wait: the batcher's settings, checked.

use std::time::Duration;

/// The batching policy. A batch closes when it holds `max_batch` requests, or `max_tokens`
/// tokens, or when its oldest request has waited `max_delay` — whichever comes first.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchPolicy {
    /// Most requests per batch.
    pub max_batch: usize,
    /// Most tokens per batch (a single larger request still runs, alone).
    pub max_tokens: usize,
    /// Longest a request waits in the queue before its batch closes.
    pub max_delay: Duration,
    /// Most requests waiting; beyond it, admission is refused at once.
    pub queue_capacity: usize,
    /// Batch sizes the executor prefers (e.g. 1, 2, 4, 8): when a batch closes on delay with a
    /// size between two of them, it is cut down to the largest preferred size that fits. Empty:
    /// no preference.
    pub preferred_sizes: Vec<usize>,
    /// Same-modality grouping: a batch holds the requests of one group (the key given at
    /// admission, e.g. a request's modality mix) — the group of the first request in service
    /// order, or any group that fills a batch on its own. Requests that have waited
    /// `max_delay` still leave in the next batch whatever their group, so the delay bound is
    /// kept. Off: groups are ignored.
    pub grouping: bool,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        BatchPolicy {
            max_batch: 16,
            max_tokens: 8192,
            max_delay: Duration::from_millis(5),
            queue_capacity: 1024,
            preferred_sizes: Vec::new(),
            grouping: false,
        }
    }
}

/// A policy that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("batch policy: {0}")]
pub struct PolicyError(pub String);

impl BatchPolicy {
    /// Check the policy; the error names the offending setting.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let bad = |m: String| Err(PolicyError(m));
        if self.max_batch == 0 {
            return bad("max_batch must be at least 1, got 0".into());
        }
        if self.max_tokens == 0 {
            return bad("max_tokens must be at least 1, got 0".into());
        }
        if self.queue_capacity == 0 {
            return bad("queue_capacity must be at least 1, got 0".into());
        }
        if let Some(p) = self.preferred_sizes.iter().find(|&&p| p == 0 || p > self.max_batch) {
            return bad(format!("preferred size {p} must be within 1..={}", self.max_batch));
        }
        Ok(())
    }
}
