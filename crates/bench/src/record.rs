//! What a scenario run leaves behind: one [`Sample`] per request sent, the latency of each
//! query (a multi-stream query is several samples), the batch sizes the target saw, and the
//! run's length. Reports and plots are computed from it.

use crate::target::Completion;

/// One request sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Which request of the pool.
    pub request: usize,
    /// When it was scheduled to be sent, in seconds from the start of the run.
    pub scheduled_s: f64,
    /// From its scheduled send time to its answer, in milliseconds.
    pub latency_ms: f64,
    /// From its scheduled send time to the start of its batch, in milliseconds.
    pub queue_ms: f64,
    /// Requests in its batch.
    pub batch: usize,
    /// The target's answer, or why there was none.
    pub outcome: Result<Completion, String>,
}

/// A finished run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    /// Every request sent, in send order.
    pub samples: Vec<Sample>,
    /// The latency of every answered query, in milliseconds (failed queries are not included).
    pub query_latencies_ms: Vec<f64>,
    /// Seconds from the first send to the last answer.
    pub duration_s: f64,
    /// The size of every batch the target ran, in order.
    pub batch_sizes: Vec<usize>,
}

impl Run {
    /// Samples that failed.
    pub fn failed(&self) -> usize {
        self.samples.iter().filter(|s| s.outcome.is_err()).count()
    }

    /// Queries answered.
    pub fn queries(&self) -> usize {
        self.query_latencies_ms.len()
    }

    /// Answered samples per second.
    pub fn samples_per_second(&self) -> f64 {
        let ok = self.samples.len() - self.failed();
        if self.duration_s > 0.0 { ok as f64 / self.duration_s } else { 0.0 }
    }
}
