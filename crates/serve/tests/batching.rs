//! The batcher's guarantees: the queue-delay bound on a virtual clock (a simulated slow
//! executor, so the test asserts a scheduling property, not a machine's speed), and the
//! threaded batcher's answers, refusals, timeouts and drain.

#![allow(clippy::panic)]

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omnifuse_serve::batcher::SubmitError;
use omnifuse_serve::queue::{Decision, Queue};
use omnifuse_serve::{BatchPolicy, Batcher, Outcome};
use proptest::prelude::*;

/// Run arrivals (sorted times, µs) through the queue with an executor that takes `exec` per
/// batch; returns each request's wait (µs) from arrival to the start of its batch.
fn simulate(policy: BatchPolicy, arrivals: &[u64], exec: u64) -> Vec<u64> {
    simulate_groups(policy, arrivals, &vec![0; arrivals.len()], exec).0
}

/// [`simulate`] with a group per arrival; also returns every batch (request indices, in order).
fn simulate_groups(policy: BatchPolicy, arrivals: &[u64], groups: &[u64], exec: u64) -> (Vec<u64>, Vec<Vec<usize>>) {
    let us = Duration::from_micros;
    let mut q = Queue::new(policy).expect("valid policy");
    let mut waits = vec![u64::MAX; arrivals.len()];
    let mut batches = Vec::new();
    let (mut next, mut now, mut free_at) = (0usize, 0u64, 0u64);
    loop {
        while next < arrivals.len() && arrivals[next] <= now {
            q.push_in_group(us(arrivals[next]), next, 1, 0, None, groups[next]).expect("capacity is ample");
            next += 1;
        }
        let mut wake = u64::MAX;
        if now >= free_at {
            match q.poll(us(now)).decision {
                Decision::Run(batch) => {
                    for &(_, i) in &batch {
                        waits[i] = now - arrivals[i];
                    }
                    batches.push(batch.into_iter().map(|(_, i)| i).collect());
                    free_at = now + exec;
                    wake = free_at;
                }
                Decision::WaitUntil(t) => wake = t.as_micros() as u64,
                Decision::Idle if next == arrivals.len() => return (waits, batches),
                Decision::Idle => {}
            }
        } else {
            wake = free_at;
        }
        let arrival = arrivals.get(next).copied().unwrap_or(u64::MAX);
        let t = wake.min(arrival);
        assert!(t != u64::MAX && t >= now, "the simulation must advance (now {now}, next {t})");
        now = t;
    }
}

proptest! {
    /// No request waits past max_delay + one batch execution, as long as at most max_batch
    /// requests arrive in any window of max_delay + execution time (the executor keeps up).
    #[test]
    fn no_request_waits_past_the_delay_bound_plus_one_batch(
        max_batch in 1usize..9,
        delay in 100u64..5000,
        exec in 100u64..20000,
        extra_gaps in prop::collection::vec(0u64..20000, 1..200),
    ) {
        let min_gap = (delay + exec) / max_batch as u64 + 1;
        let mut t = 0;
        let arrivals: Vec<u64> = extra_gaps.iter().map(|g| { t += min_gap + g; t }).collect();
        let policy = BatchPolicy {
            max_batch,
            max_tokens: 1 << 20,
            max_delay: Duration::from_micros(delay),
            queue_capacity: 4096,
            preferred_sizes: vec![],
            grouping: false,
        };
        let waits = simulate(policy, &arrivals, exec);
        for (i, w) in waits.iter().enumerate() {
            prop_assert!(*w <= delay + exec, "request {i} waited {w} µs > {delay} + {exec}");
        }
    }

    /// Same-modality grouping keeps the bound under the same load, whatever the mixes (rare
    /// ones included), and a batch holds one mix apart from requests already overdue.
    #[test]
    fn grouping_keeps_the_delay_bound_and_batches_one_mix(
        max_batch in 1usize..9,
        delay in 100u64..5000,
        exec in 100u64..20000,
        arrivals in prop::collection::vec((0u64..20000, 0u64..4), 1..200),
    ) {
        let min_gap = (delay + exec) / max_batch as u64 + 1;
        let mut t = 0;
        let times: Vec<u64> = arrivals.iter().map(|(g, _)| { t += min_gap + g; t }).collect();
        // Mix 3 is rare: one request in about twenty.
        let groups: Vec<u64> = arrivals.iter().enumerate().map(|(i, &(_, g))| if i % 20 == 7 { 3 } else { g % 3 }).collect();
        let policy = BatchPolicy {
            max_batch,
            max_tokens: 1 << 20,
            max_delay: Duration::from_micros(delay),
            queue_capacity: 4096,
            preferred_sizes: vec![],
            grouping: true,
        };
        let (waits, batches) = simulate_groups(policy, &times, &groups, exec);
        for (i, w) in waits.iter().enumerate() {
            prop_assert!(*w <= delay + exec, "request {i} (mix {}) waited {w} µs > {delay} + {exec}", groups[i]);
        }
        for b in &batches {
            let start = times[b[0]] + waits[b[0]];
            let mixes: std::collections::BTreeSet<u64> =
                b.iter().filter(|&&i| start < times[i] + delay).map(|&i| groups[i]).collect();
            prop_assert!(mixes.len() <= 1, "batch {b:?} mixes groups {mixes:?} among requests not yet overdue");
        }
    }
}

#[test]
fn batches_form_under_load_and_every_request_gets_its_own_answer() {
    let policy = BatchPolicy { max_batch: 8, max_delay: Duration::from_millis(20), ..BatchPolicy::default() };
    let b = Batcher::new(policy, |xs: Vec<u32>| xs.into_iter().map(|x| x * 2).collect()).expect("batcher");
    let tickets: Vec<_> = (0..20u32).map(|i| b.submit(i, 1, 0, None).expect("admitted")).collect();
    for (i, t) in tickets.into_iter().enumerate() {
        assert_eq!(t.wait(), Outcome::Done(2 * i as u32));
    }
    let sizes = b.batch_sizes();
    assert_eq!(sizes.iter().sum::<usize>(), 20);
    assert!(sizes.iter().any(|&s| s > 1), "requests submitted together were batched: {sizes:?}");
    assert!(sizes.iter().all(|&s| s <= 8), "{sizes:?}");
}

/// An executor held at a gate until the test opens it.
fn gated() -> (impl Fn(Vec<u32>) -> Vec<u32> + Send + Sync + 'static, mpsc::Sender<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let exec = move |xs: Vec<u32>| {
        let _ = rx.lock().map(|r| r.recv());
        xs
    };
    (exec, tx)
}

#[test]
fn a_full_queue_refuses_at_once_and_deadlines_answer_timeouts() {
    let (exec, gate) = gated();
    let policy = BatchPolicy { max_batch: 1, max_delay: Duration::ZERO, queue_capacity: 2, ..BatchPolicy::default() };
    let b = Batcher::new(policy, exec).expect("batcher");
    let first = b.submit(0, 1, 0, None).expect("admitted");
    // Wait until the worker has taken the first request and is held at the gate.
    while b.waiting() > 0 {
        std::thread::yield_now();
    }
    let late = b.submit(1, 1, 0, Some(Duration::ZERO)).expect("admitted");
    let kept = b.submit(2, 1, 0, None).expect("admitted");
    let refused = b.submit(3, 1, 0, None).expect_err("queue full");
    assert_eq!(refused, SubmitError::Full { waiting: 2, capacity: 2 });
    assert!(refused.to_string().contains("overloaded"));
    for _ in 0..3 {
        gate.send(()).expect("gate");
    }
    assert_eq!(first.wait(), Outcome::Done(0));
    assert_eq!(late.wait(), Outcome::TimedOut, "its deadline passed while it waited");
    assert_eq!(kept.wait(), Outcome::Done(2));
}

#[test]
fn dropping_the_batcher_runs_what_was_admitted() {
    let policy = BatchPolicy { max_batch: 4, max_delay: Duration::from_millis(50), ..BatchPolicy::default() };
    let b = Batcher::new(policy, |xs: Vec<u32>| xs).expect("batcher");
    let tickets: Vec<_> = (0..3u32).map(|i| b.submit(i, 1, 0, None).expect("admitted")).collect();
    drop(b);
    for (i, t) in tickets.into_iter().enumerate() {
        assert_eq!(t.wait(), Outcome::Done(i as u32));
    }
}

#[test]
fn a_wrong_result_count_fails_the_batch_instead_of_misrouting() {
    // A long delay and a batch of two: the second submission closes the batch on count.
    let policy = BatchPolicy { max_batch: 2, max_delay: Duration::from_secs(30), ..BatchPolicy::default() };
    let b = Batcher::new(policy, |_: Vec<u32>| vec![7u32]).expect("batcher");
    let (x, y) = (b.submit(1, 1, 0, None).expect("a"), b.submit(2, 1, 0, None).expect("b"));
    for o in [x.wait(), y.wait()] {
        match o {
            Outcome::Failed(m) => assert!(m.contains("returned 1 results for a batch of 2"), "{m}"),
            other => panic!("expected a failed batch, got {other:?}"),
        }
    }
}

#[test]
fn the_threaded_batcher_groups_by_mix_and_answers_everyone() {
    // Held at a gate while 12 requests of three mixes queue up; then each batch holds one mix
    // (four of each: every group fills a batch).
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let seen = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
    let record = seen.clone();
    let exec = move |xs: Vec<u32>| {
        let _ = rx.lock().map(|r| r.recv());
        if let Ok(mut s) = record.lock() {
            s.push(xs.clone());
        }
        xs
    };
    // A long delay, so every batch below closes on count, however slow the machine.
    let policy =
        BatchPolicy { max_batch: 4, max_delay: Duration::from_secs(30), grouping: true, ..BatchPolicy::default() };
    let b = Batcher::new(policy, exec).expect("batcher");
    // The first request fills the token budget alone, so it starts (and blocks) at once.
    let first = b.submit_in_group(999, 8192, 0, None, 9).expect("admitted");
    while b.waiting() > 0 {
        std::thread::yield_now();
    }
    // Payload = mix * 100 + serial, so a batch's mixes can be read back from its payloads.
    let tickets: Vec<_> = (0..12u32)
        .map(|i| (i, b.submit_in_group((i % 3) * 100 + i, 1, 0, None, u64::from(i % 3)).expect("a")))
        .collect();
    for _ in 0..16 {
        let _ = tx.send(());
    }
    assert_eq!(first.wait(), Outcome::Done(999));
    for (i, t) in tickets {
        assert_eq!(t.wait(), Outcome::Done((i % 3) * 100 + i));
    }
    let batches = seen.lock().map(|s| s.clone()).unwrap_or_default();
    for batch in &batches[1..] {
        let mixes: std::collections::BTreeSet<u32> = batch.iter().map(|x| x / 100).collect();
        assert_eq!(mixes.len(), 1, "one mix per batch: {batches:?}");
    }
    assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 13);
}
