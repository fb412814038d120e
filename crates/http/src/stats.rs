//! Per-model statistics in the shape of Triton's statistics extension
//! (`GET /v2/models/{m}/stats`): request successes and failures with their total time,
//! queue time, compute time, and per batch size the executions and their time. Counts and
//! nanosecond totals only, so it stays small however long the server runs. The model does
//! its input preparation and output extraction inside one call, so all of a batch's time is
//! reported as `compute_infer`; `compute_input` and `compute_output` carry counts with zero
//! time, and the cache counters are zero (there is no response cache).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// A count and the nanoseconds spent over it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Duration64 {
    /// How many.
    pub count: u64,
    /// Total nanoseconds.
    pub ns: u64,
}

impl Duration64 {
    fn add(&mut self, d: Duration) {
        self.count += 1;
        self.ns = self.ns.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    fn json(&self) -> Value {
        json!({"count": self.count, "ns": self.ns})
    }
}

/// A snapshot of a model's statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Requests answered successfully (end to end, queue included).
    pub success: Duration64,
    /// Requests that failed (refused by the model, timed out, cancelled).
    pub fail: Duration64,
    /// Requests refused at admission (queue full).
    pub refused: u64,
    /// Time requests waited in the queue before their batch started.
    pub queue: Duration64,
    /// Model time per request (its batch's time).
    pub compute: Duration64,
    /// Requests run by the model.
    pub inference_count: u64,
    /// Batches run by the model.
    pub execution_count: u64,
    /// Per batch size: batches of that size and their time.
    pub batches: BTreeMap<usize, Duration64>,
    /// When the last batch ran, in milliseconds since the Unix epoch (0: never).
    pub last_inference_ms: u64,
}

/// A model's statistics, updated by the executor and the handlers.
#[derive(Debug, Default)]
pub struct ModelStats {
    inner: Mutex<Snapshot>,
}

impl ModelStats {
    fn with<T>(&self, f: impl FnOnce(&mut Snapshot) -> T) -> T {
        // Every update is a few additions: a panic elsewhere cannot leave them half done.
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }

    /// A batch ran: each request's queue time and the batch's duration.
    pub fn record_batch(&self, queued: &[Duration], took: Duration) {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        self.with(|s| {
            for q in queued {
                s.queue.add(*q);
                s.compute.add(took);
            }
            s.inference_count += queued.len() as u64;
            s.execution_count += 1;
            s.batches.entry(queued.len()).or_default().add(took);
            s.last_inference_ms = now_ms;
        });
    }

    /// A request ended after `took`, end to end.
    pub fn record_request(&self, ok: bool, took: Duration) {
        self.with(|s| if ok { s.success.add(took) } else { s.fail.add(took) });
    }

    /// A request was refused at admission.
    pub fn record_refused(&self) {
        self.with(|s| s.refused += 1);
    }

    /// The numbers now.
    pub fn snapshot(&self) -> Snapshot {
        self.with(|s| s.clone())
    }
}

impl Snapshot {
    /// One entry of Triton's `model_stats` list.
    pub fn triton_json(&self, name: &str, version: &str) -> Value {
        let zero = Duration64::default().json();
        let batch_stats: Vec<Value> = self
            .batches
            .iter()
            .map(|(size, d)| {
                json!({
                    "batch_size": size,
                    "compute_input": {"count": d.count, "ns": 0},
                    "compute_infer": d.json(),
                    "compute_output": {"count": d.count, "ns": 0},
                })
            })
            .collect();
        json!({
            "name": name,
            "version": version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.json(),
                "fail": {"count": self.fail.count + self.refused, "ns": self.fail.ns},
                "queue": self.queue.json(),
                "compute_input": {"count": self.compute.count, "ns": 0},
                "compute_infer": self.compute.json(),
                "compute_output": {"count": self.compute.count, "ns": 0},
                "cache_hit": zero,
                "cache_miss": zero,
            },
            "response_stats": {},
            "batch_stats": batch_stats,
            "memory_usage": [],
        })
    }
}
