//! The offline scenario (MLPerf's: every query available at once; the figure is samples per
//! second). Dynamic batching off runs the requests one at a time; on runs them `batch` at a
//! time. Both run on the same requests in the same process, alternating round by round, and
//! medians are reported, so the ratio is measured under the same conditions. A sample's
//! latency is from the start of its round to the end of its batch.
//!
//! With same-modality grouping the batched pass first splits the requests by modality mix —
//! largest group first, request order kept within a group — and cuts each group into batches,
//! so a batch holds one mix (a group's last batch may be smaller).

use std::time::Instant;

use crate::record::{Run, Sample};
use crate::target::Target;
use crate::workload::Request;
use omnifuse_model::input::mix_key;

/// One configuration's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Pass {
    /// Requests per batch (1 = batching off).
    pub batch: usize,
    /// Whether batches were drawn from one modality mix each.
    pub grouping: bool,
    /// Seconds per round, one per round.
    pub seconds: Vec<f64>,
    /// Requests that failed in the worst round (their errors are counted, not retried).
    pub failed: usize,
    /// Every round's samples together (`duration_s` is the sum of the rounds).
    pub run: Run,
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

/// The batches of a pass, as request indices: consecutive chunks of `batch`, or with
/// `grouping` the chunks of each modality mix's requests, the largest mix first (ties in
/// order of first appearance).
pub fn batches(requests: &[Request], batch: usize, grouping: bool) -> Vec<Vec<usize>> {
    let batch = batch.max(1);
    let all: Vec<usize> = (0..requests.len()).collect();
    if !grouping {
        return all.chunks(batch).map(<[usize]>::to_vec).collect();
    }
    let mut groups: Vec<(u64, Vec<usize>)> = Vec::new();
    for i in all {
        let key = mix_key(&requests[i]);
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    // A stable sort: equal sizes keep their order of first appearance.
    groups.sort_by_key(|g| std::cmp::Reverse(g.1.len()));
    groups.iter().flat_map(|g| g.1.chunks(batch).map(<[usize]>::to_vec)).collect()
}

fn round(target: &dyn Target, requests: &[Request], pass: &mut Pass) {
    let start_s = pass.run.duration_s;
    let plan = batches(requests, pass.batch, pass.grouping);
    let t0 = Instant::now();
    let mut failed = 0;
    for chunk in &plan {
        let batch: Vec<&Request> = chunk.iter().filter_map(|&i| requests.get(i)).collect();
        let started_ms = t0.elapsed().as_secs_f64() * 1e3;
        let out = target.run_batch(&batch);
        let ended_ms = t0.elapsed().as_secs_f64() * 1e3;
        pass.run.batch_sizes.push(chunk.len());
        let mut out = out.into_iter();
        for &request in chunk {
            let outcome = out.next().unwrap_or_else(|| Err("the target gave no answer".into()));
            if outcome.is_ok() {
                pass.run.query_latencies_ms.push(ended_ms);
            } else {
                failed += 1;
            }
            pass.run.samples.push(Sample {
                request,
                scheduled_s: start_s,
                latency_ms: ended_ms,
                queue_ms: started_ms,
                batch: chunk.len(),
                outcome,
            });
        }
    }
    let s = t0.elapsed().as_secs_f64();
    pass.seconds.push(s);
    pass.run.duration_s += s;
    pass.failed = pass.failed.max(failed);
}

/// Run `rounds` rounds of each configuration, alternating (the batched one with same-modality
/// `grouping` or not); `progress` is called after each round with (round, rounds).
pub fn run(
    target: &dyn Target,
    requests: &[Request],
    batch: usize,
    grouping: bool,
    rounds: usize,
    mut progress: impl FnMut(usize, usize),
) -> Offline {
    let pass = |batch, grouping| Pass { batch, grouping, seconds: Vec::new(), failed: 0, run: Run::default() };
    let (mut single, mut batched) = (pass(1, false), pass(batch.max(1), grouping));
    for r in 0..rounds.max(1) {
        round(target, requests, &mut single);
        round(target, requests, &mut batched);
        progress(r + 1, rounds.max(1));
    }
    Offline { queries: requests.len(), single, batched }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeTarget;
    use omnifuse_model::input::RawInput;
    use std::time::Duration;

    #[test]
    fn batching_amortises_a_per_batch_cost() {
        // 4 ms per batch: 16 batches of one vs 2 batches of eight.
        let target = FakeTarget { per_batch: Duration::from_millis(4), ..FakeTarget::default() };
        let requests: Vec<Request> = (0..16).map(|i| vec![RawInput::Text(format!("r{i}"))]).collect();
        let r = run(&target, &requests, 8, false, 2, |_, _| {});
        assert_eq!(r.single.seconds.len(), 2);
        assert_eq!(r.single.run.batch_sizes, vec![1; 32]);
        assert_eq!(r.batched.run.batch_sizes, vec![8; 4]);
        assert_eq!(r.batched.run.samples.len(), 32);
        assert!(r.single.median_seconds() >= 0.064);
        // The gain is bounded by 8× (per-batch cost only); a lower bound would be a timing
        // assertion, so only the count of batches run is checked.
        assert_eq!(target.calls(), 2 * (16 + 2));
    }

    #[test]
    fn grouping_cuts_batches_from_one_mix_each_largest_mix_first() {
        let text = |i: usize| RawInput::Text(format!("r{i}"));
        let pcm = RawInput::Pcm { samples: vec![0.0; 16], sample_rate: 16_000 };
        let pixels = RawInput::Pixels { height: 1, width: 1, data: omnifuse_model::input::PixelData::U8(vec![0; 3]) };
        // Mixes by index: text, audio, text, text+image, text, audio, text.
        let requests: Vec<Request> = vec![
            vec![text(0)],
            vec![pcm.clone()],
            vec![text(2)],
            vec![pixels, text(3)],
            vec![text(4)],
            vec![pcm],
            vec![text(6)],
        ];
        assert_eq!(batches(&requests, 3, false), vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        assert_eq!(batches(&requests, 3, true), vec![vec![0, 2, 4], vec![6], vec![1, 5], vec![3]]);
        let target = FakeTarget::default();
        let r = run(&target, &requests, 3, true, 1, |_, _| {});
        assert_eq!(r.batched.run.batch_sizes, vec![3, 1, 2, 1]);
        let order: Vec<usize> = r.batched.run.samples.iter().map(|s| s.request).collect();
        assert_eq!(order, vec![0, 2, 4, 6, 1, 5, 3], "samples name their own requests");
    }
}
