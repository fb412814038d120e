//! The offline scenario (MLPerf's: every query available at once; the figure is samples per
//! second). Dynamic batching off runs the requests one at a time; on runs them `batch` at a
//! time through [`Model::run_batch`]. Both run on the same requests in the same process,
//! alternating round by round, and medians are reported, so the ratio is measured under the
//! same conditions.

use std::time::Instant;

use omnifuse_model::Model;
use omnifuse_model::request::Parameters;

use crate::workload::Request;

/// One configuration's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Pass {
    /// Requests per batch (1 = batching off).
    pub batch: usize,
    /// Seconds per round, one per round.
    pub seconds: Vec<f64>,
    /// Requests that failed (their errors are counted, not retried).
    pub failed: usize,
}

impl Pass {
    /// Median seconds of a round.
    pub fn median_seconds(&self) -> f64 {
        let mut s = self.seconds.clone();
        s.sort_by(f64::total_cmp);
        s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
    }

    /// Samples per second at the median round.
    pub fn samples_per_second(&self, queries: usize) -> f64 {
        queries as f64 / self.median_seconds()
    }
}

/// The offline scenario's result: batching off and on, same requests, same run.
#[derive(Clone, Debug, PartialEq)]
pub struct Offline {
    /// Requests per round.
    pub queries: usize,
    /// Batching off.
    pub single: Pass,
    /// Batching on.
    pub batched: Pass,
}

impl Offline {
    /// Throughput with batching over throughput without.
    pub fn gain(&self) -> f64 {
        self.single.median_seconds() / self.batched.median_seconds()
    }
}

fn round(model: &Model, requests: &[Request], params: &Parameters, batch: usize) -> (f64, usize) {
    let t0 = Instant::now();
    let mut failed = 0;
    for chunk in requests.chunks(batch.max(1)) {
        let jobs: Vec<(&[omnifuse_model::input::RawInput], &Parameters)> =
            chunk.iter().map(|r| (r.as_slice(), params)).collect();
        failed += model.run_batch(&jobs).iter().filter(|r| r.is_err()).count();
    }
    (t0.elapsed().as_secs_f64(), failed)
}

/// Run `rounds` rounds of each configuration, alternating; `progress` is called after each
/// round with (round, rounds).
pub fn run(
    model: &Model,
    requests: &[Request],
    params: &Parameters,
    batch: usize,
    rounds: usize,
    mut progress: impl FnMut(usize, usize),
) -> Offline {
    let mut single = Pass { batch: 1, seconds: Vec::new(), failed: 0 };
    let mut batched = Pass { batch, seconds: Vec::new(), failed: 0 };
    for r in 0..rounds.max(1) {
        for pass in [&mut single, &mut batched] {
            let (s, f) = round(model, requests, params, pass.batch);
            pass.seconds.push(s);
            pass.failed = pass.failed.max(f);
        }
        progress(r + 1, rounds.max(1));
    }
    Offline { queries: requests.len(), single, batched }
}
