//! The batching state machine: requests wait here, and [`Queue::poll`] says, for a given
//! time, which requests expired, and whether to run a batch now or when to look again. Times
//! are explicit (a `Duration` since any fixed origin), so the same code runs on the real clock
//! in [`crate::batcher`] and on a virtual clock in tests.
//!
//! Order of service: requests that have already waited `max_delay` first (oldest first, so a
//! low priority never starves past the delay bound), then by priority level (higher first),
//! FIFO within a level. A batch takes requests in that order while it has room in requests and
//! tokens (a single request over the token budget still runs, alone). It closes when full, when
//! the next request does not fit its token budget, or when its oldest request has waited
//! `max_delay`.
//!
//! With [`BatchPolicy::grouping`] on, every request carries a group key (a modality mix, say)
//! and a batch is drawn from one group: the group of the first request in service order, or,
//! when that group cannot fill a batch yet, the first other group (in service order) that can.
//! Overdue requests are the exception: they always go first, whatever their group, so the
//! delay bound holds as it does without grouping. Within a group the order of service is the
//! one above; requests of other groups keep their places.

use std::time::Duration;

use crate::policy::{BatchPolicy, PolicyError};

/// A request's handle in the queue.
pub type Id = u64;

/// Why a request was not admitted; the payload comes back.
#[derive(Debug)]
pub struct Refused<T> {
    /// The request, unconsumed.
    pub payload: T,
    /// Requests waiting when it was refused.
    pub waiting: usize,
    /// The queue's capacity.
    pub capacity: usize,
}

/// What to do next.
#[derive(Debug, PartialEq)]
pub enum Decision<T> {
    /// Nothing waits.
    Idle,
    /// Look again at this time (the oldest request's delay bound or the earliest deadline).
    WaitUntil(Duration),
    /// Run this batch now (ids and payloads, in service order).
    Run(Vec<(Id, T)>),
}

/// The result of a poll: requests whose deadline passed (answer them with a timeout; they
/// never run) and the decision.
#[derive(Debug)]
pub struct Poll<T> {
    /// Expired requests.
    pub expired: Vec<(Id, T)>,
    /// What to do now.
    pub decision: Decision<T>,
}

/// Whether a request was admitted.
pub type Admission<T> = Result<Id, Refused<T>>;

#[derive(Debug)]
struct Waiting<T> {
    id: Id,
    payload: T,
    tokens: usize,
    priority: u8,
    deadline: Option<Duration>,
    enqueued: Duration,
    group: u64,
}

/// The waiting requests and the policy that batches them.
#[derive(Debug)]
pub struct Queue<T> {
    policy: BatchPolicy,
    waiting: Vec<Waiting<T>>,
    next_id: Id,
}

impl<T> Queue<T> {
    /// An empty queue; errors for a policy that cannot work.
    pub fn new(policy: BatchPolicy) -> Result<Self, PolicyError> {
        policy.validate()?;
        Ok(Queue { policy, waiting: Vec::new(), next_id: 0 })
    }

    /// The policy.
    pub fn policy(&self) -> &BatchPolicy {
        &self.policy
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Admit a request of `tokens` tokens at time `now`, or refuse it at once when the queue is
    /// full. `deadline` is an absolute time on the same clock. It joins group 0.
    pub fn push(
        &mut self,
        now: Duration,
        payload: T,
        tokens: usize,
        priority: u8,
        deadline: Option<Duration>,
    ) -> Admission<T> {
        self.push_in_group(now, payload, tokens, priority, deadline, 0)
    }

    /// [`Queue::push`] for a request of group `group` (what same-modality grouping batches
    /// by; ignored when the policy's grouping is off).
    pub fn push_in_group(
        &mut self,
        now: Duration,
        payload: T,
        tokens: usize,
        priority: u8,
        deadline: Option<Duration>,
        group: u64,
    ) -> Admission<T> {
        if self.waiting.len() >= self.policy.queue_capacity {
            return Err(Refused { payload, waiting: self.waiting.len(), capacity: self.policy.queue_capacity });
        }
        let id = self.next_id;
        self.next_id += 1;
        self.waiting.push(Waiting { id, payload, tokens, priority, deadline, enqueued: now, group });
        Ok(id)
    }

    /// Decide at time `now`.
    pub fn poll(&mut self, now: Duration) -> Poll<T> {
        let mut expired = Vec::new();
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].deadline.is_some_and(|d| d <= now) {
                let w = self.waiting.remove(i);
                expired.push((w.id, w.payload));
            } else {
                i += 1;
            }
        }
        let Some(oldest) = self.waiting.iter().map(|w| w.enqueued).min() else {
            return Poll { expired, decision: Decision::Idle };
        };
        let delay = self.policy.max_delay;
        let overdue = |w: &Waiting<T>| now >= w.enqueued + delay;
        let mut order: Vec<usize> = (0..self.waiting.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&self.waiting[a], &self.waiting[b]);
            overdue(y)
                .cmp(&overdue(x))
                .then(if overdue(x) { x.enqueued.cmp(&y.enqueued) } else { y.priority.cmp(&x.priority) })
                .then(x.enqueued.cmp(&y.enqueued))
                .then(x.id.cmp(&y.id))
        });
        let due = now >= oldest + delay;
        let (mut take, full) = if self.policy.grouping {
            self.fill_grouped(&order, due, &overdue)
        } else {
            self.fill(order.iter().copied())
        };
        if !full && !due {
            let wake = self.waiting.iter().filter_map(|w| w.deadline).fold(oldest + delay, Duration::min);
            return Poll { expired, decision: Decision::WaitUntil(wake) };
        }
        if !full {
            // Closed on delay: cut to a preferred size, unless that would leave an overdue
            // request behind.
            if let Some(&p) = self.policy.preferred_sizes.iter().filter(|&&p| p <= take.len()).max() {
                let left_overdue = take[p..].iter().any(|&k| overdue(&self.waiting[k]));
                if !left_overdue {
                    take.truncate(p);
                }
            }
        }
        let mut chosen: Vec<(usize, usize)> = take.iter().enumerate().map(|(rank, &k)| (k, rank)).collect();
        // Remove from the back so indices stay valid, then restore service order.
        chosen.sort_by_key(|c| std::cmp::Reverse(c.0));
        let mut batch: Vec<(usize, Id, T)> = chosen
            .into_iter()
            .map(|(k, rank)| {
                let w = self.waiting.remove(k);
                (rank, w.id, w.payload)
            })
            .collect();
        batch.sort_by_key(|b| b.0);
        Poll { expired, decision: Decision::Run(batch.into_iter().map(|(_, id, p)| (id, p)).collect()) }
    }

    /// Fill a batch from `candidates` (indices into `waiting`, in service order): the batch
    /// and whether it is full (the request count or the token budget reached, or the next
    /// candidate does not fit).
    fn fill(&self, candidates: impl Iterator<Item = usize>) -> (Vec<usize>, bool) {
        let (mut take, mut tokens, mut full) = (Vec::new(), 0usize, false);
        for k in candidates {
            let t = self.waiting[k].tokens;
            if take.len() == self.policy.max_batch {
                full = true;
                break;
            }
            if !take.is_empty() && tokens + t > self.policy.max_tokens {
                full = true;
                break;
            }
            take.push(k);
            tokens += t;
        }
        full |= take.len() == self.policy.max_batch || tokens >= self.policy.max_tokens;
        (take, full)
    }

    /// Fill a batch of one group: the lead group's (the first request's in service order,
    /// with every overdue request of any group ahead of it) when it is full or `due`; else the
    /// first other group, in service order, that fills a batch alone; else the lead's
    /// (not full: the caller waits).
    fn fill_grouped(&self, order: &[usize], due: bool, overdue: &dyn Fn(&Waiting<T>) -> bool) -> (Vec<usize>, bool) {
        let mut groups: Vec<u64> = Vec::new();
        for &k in order {
            let g = self.waiting[k].group;
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        let of =
            |g: u64| order.iter().copied().filter(move |&k| self.waiting[k].group == g || overdue(&self.waiting[k]));
        let Some((&lead, others)) = groups.split_first() else { return (Vec::new(), false) };
        let (take, full) = self.fill(of(lead));
        if full || due {
            return (take, full);
        }
        for &g in others {
            let (other, other_full) = self.fill(of(g));
            if other_full {
                return (other, true);
            }
        }
        (take, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn policy(max_batch: usize, max_tokens: usize, delay_ms: u64, capacity: usize) -> BatchPolicy {
        BatchPolicy {
            max_batch,
            max_tokens,
            max_delay: ms(delay_ms),
            queue_capacity: capacity,
            preferred_sizes: Vec::new(),
            grouping: false,
        }
    }

    fn ids<T>(d: Decision<T>) -> Vec<Id> {
        match d {
            Decision::Run(b) => b.into_iter().map(|(id, _)| id).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn closes_on_count_tokens_or_delay_whichever_first() {
        let mut q = Queue::new(policy(3, 100, 10, 64)).unwrap();
        assert_eq!(q.poll(ms(0)).decision, Decision::Idle);
        q.push(ms(0), "a", 10, 0, None).unwrap();
        q.push(ms(1), "b", 10, 0, None).unwrap();
        assert_eq!(q.poll(ms(2)).decision, Decision::WaitUntil(ms(10)), "not full, not due");
        q.push(ms(3), "c", 10, 0, None).unwrap();
        assert_eq!(ids(q.poll(ms(3)).decision), vec![0, 1, 2], "count reached");
        q.push(ms(4), "d", 60, 0, None).unwrap();
        q.push(ms(4), "e", 50, 0, None).unwrap();
        assert_eq!(ids(q.poll(ms(4)).decision), vec![3], "e does not fit the token budget: close");
        assert_eq!(q.poll(ms(5)).decision, Decision::WaitUntil(ms(14)));
        assert_eq!(ids(q.poll(ms(14)).decision), vec![4], "delay reached");
        q.push(ms(20), "huge", 500, 0, None).unwrap();
        assert_eq!(ids(q.poll(ms(20)).decision), vec![5], "one request over the budget runs alone");
    }

    #[test]
    fn priorities_then_fifo_and_overdue_requests_first() {
        let mut q = Queue::new(policy(2, 1000, 10, 64)).unwrap();
        q.push(ms(0), "low-old", 1, 0, None).unwrap();
        q.push(ms(1), "high-1", 1, 5, None).unwrap();
        q.push(ms(2), "high-2", 1, 5, None).unwrap();
        assert_eq!(ids(q.poll(ms(2)).decision), vec![1, 2], "higher level first, FIFO within it");
        let mut q = Queue::new(policy(2, 1000, 10, 64)).unwrap();
        q.push(ms(0), "low-old", 1, 0, None).unwrap();
        q.push(ms(9), "high-1", 1, 5, None).unwrap();
        q.push(ms(9), "high-2", 1, 5, None).unwrap();
        assert_eq!(ids(q.poll(ms(10)).decision), vec![0, 1], "the overdue low-priority request goes first");
    }

    #[test]
    fn deadlines_expire_without_running_and_wake_the_poller() {
        let mut q = Queue::new(policy(8, 1000, 50, 64)).unwrap();
        q.push(ms(0), "a", 1, 0, Some(ms(20))).unwrap();
        q.push(ms(0), "b", 1, 0, None).unwrap();
        assert_eq!(q.poll(ms(1)).decision, Decision::WaitUntil(ms(20)), "wakes for the deadline");
        let p = q.poll(ms(20));
        assert_eq!(p.expired.iter().map(|e| e.1).collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(p.decision, Decision::WaitUntil(ms(50)));
        assert_eq!(ids(q.poll(ms(50)).decision), vec![1]);
    }

    #[test]
    fn a_full_queue_refuses_at_once_and_returns_the_request() {
        let mut q = Queue::new(policy(4, 1000, 10, 2)).unwrap();
        q.push(ms(0), 1, 1, 0, None).unwrap();
        q.push(ms(0), 2, 1, 0, None).unwrap();
        let r = q.push(ms(0), 3, 1, 0, None).unwrap_err();
        assert_eq!((r.payload, r.waiting, r.capacity), (3, 2, 2));
    }

    #[test]
    fn preferred_sizes_cut_a_delayed_batch_unless_that_strands_an_overdue_request() {
        let mut p = policy(8, 1000, 10, 64);
        p.preferred_sizes = vec![1, 2, 4];
        let mut q = Queue::new(p).unwrap();
        for t in [0, 5, 6] {
            q.push(ms(t), t, 1, 0, None).unwrap();
        }
        assert_eq!(ids(q.poll(ms(10)).decision), vec![0, 1], "3 cut to 2: the one left has not waited 10 ms");
        assert_eq!(ids(q.poll(ms(16)).decision), vec![2]);
        let mut p = policy(8, 1000, 10, 64);
        p.preferred_sizes = vec![2];
        let mut q = Queue::new(p).unwrap();
        for _ in 0..3 {
            q.push(ms(0), 0, 1, 0, None).unwrap();
        }
        assert_eq!(ids(q.poll(ms(10)).decision).len(), 3, "all three are overdue: no cut");
    }

    fn grouped(max_batch: usize, delay_ms: u64) -> BatchPolicy {
        BatchPolicy { grouping: true, ..policy(max_batch, 1000, delay_ms, 64) }
    }

    const TEXT: u64 = 1;
    const IMAGE: u64 = 2;
    const AUDIO: u64 = 4;

    #[test]
    fn grouping_draws_a_batch_from_one_mix_and_leaves_the_others_in_order() {
        let mut q = Queue::new(grouped(8, 10)).unwrap();
        for (t, g) in [(0, TEXT), (1, IMAGE), (2, TEXT), (3, IMAGE), (4, TEXT)] {
            q.push_in_group(ms(t), t, 1, 0, None, g).unwrap();
        }
        assert_eq!(q.poll(ms(5)).decision, Decision::WaitUntil(ms(10)), "no group full, none due");
        assert_eq!(ids(q.poll(ms(10)).decision), vec![0, 2, 4], "the oldest request's mix, FIFO");
        assert_eq!(q.poll(ms(10)).decision, Decision::WaitUntil(ms(11)), "the images keep their own delay");
        assert_eq!(ids(q.poll(ms(11)).decision), vec![1, 3]);
        // Off: the same arrivals make one mixed batch.
        let mut q = Queue::new(policy(8, 1000, 10, 64)).unwrap();
        for (t, g) in [(0, TEXT), (1, IMAGE), (2, TEXT)] {
            q.push_in_group(ms(t), t, 1, 0, None, g).unwrap();
        }
        assert_eq!(ids(q.poll(ms(10)).decision), vec![0, 1, 2]);
    }

    #[test]
    fn a_full_group_runs_at_once_and_a_lone_rare_mix_still_leaves_on_its_delay() {
        let mut q = Queue::new(grouped(2, 10)).unwrap();
        q.push_in_group(ms(0), "rare", 1, 0, None, IMAGE | AUDIO).unwrap();
        q.push_in_group(ms(1), "t1", 1, 0, None, TEXT).unwrap();
        assert_eq!(q.poll(ms(1)).decision, Decision::WaitUntil(ms(10)));
        q.push_in_group(ms(2), "t2", 1, 0, None, TEXT).unwrap();
        assert_eq!(ids(q.poll(ms(2)).decision), vec![1, 2], "the text group is full: it runs");
        q.push_in_group(ms(3), "t3", 1, 0, None, TEXT).unwrap();
        assert_eq!(q.poll(ms(3)).decision, Decision::WaitUntil(ms(10)), "the rare request's bound");
        let p = q.poll(ms(10));
        assert_eq!(ids(p.decision), vec![0], "alone, at its delay, before the younger text request");
        assert_eq!(ids(q.poll(ms(13)).decision), vec![3]);
    }

    #[test]
    fn overdue_requests_of_every_mix_leave_together_under_grouping() {
        let mut q = Queue::new(grouped(8, 10)).unwrap();
        for (t, g) in [(0, TEXT), (0, IMAGE), (0, AUDIO), (5, TEXT), (5, IMAGE)] {
            q.push_in_group(ms(t), t, 1, 0, None, g).unwrap();
        }
        assert_eq!(ids(q.poll(ms(10)).decision), vec![0, 1, 2, 3], "all overdue, then the lead's mix");
        assert_eq!(ids(q.poll(ms(15)).decision), vec![4]);
    }

    #[test]
    fn grouping_keeps_priorities_deadlines_and_refusal() {
        let mut q = Queue::new(BatchPolicy { queue_capacity: 4, ..grouped(2, 10) }).unwrap();
        q.push_in_group(ms(0), "low-text", 1, 0, None, TEXT).unwrap();
        q.push_in_group(ms(1), "high-image", 1, 5, Some(ms(4)), IMAGE).unwrap();
        q.push_in_group(ms(2), "high-text", 1, 5, None, TEXT).unwrap();
        q.push_in_group(ms(3), "low-image", 1, 0, None, IMAGE).unwrap();
        assert!(q.push_in_group(ms(3), "refused", 1, 0, None, TEXT).is_err(), "capacity holds");
        // Both groups are full (2 each); the lead is the high-priority image request.
        assert_eq!(ids(q.poll(ms(3)).decision), vec![1, 3], "lead group, higher level first");
        assert_eq!(ids(q.poll(ms(3)).decision), vec![2, 0], "then the text group, high before low");
        let mut q = Queue::new(grouped(4, 10)).unwrap();
        q.push_in_group(ms(0), "a", 1, 0, Some(ms(3)), TEXT).unwrap();
        q.push_in_group(ms(1), "b", 1, 0, None, IMAGE).unwrap();
        assert_eq!(q.poll(ms(2)).decision, Decision::WaitUntil(ms(3)), "wakes for the deadline");
        let p = q.poll(ms(3));
        assert_eq!(p.expired.iter().map(|e| e.1).collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(p.decision, Decision::WaitUntil(ms(11)));
    }

    #[test]
    fn invalid_policies_are_named() {
        let e = Queue::<u8>::new(policy(0, 1, 1, 1)).unwrap_err();
        assert!(e.to_string().contains("max_batch"), "{e}");
        let mut p = policy(4, 1, 1, 1);
        p.preferred_sizes = vec![8];
        assert!(Queue::<u8>::new(p).unwrap_err().to_string().contains("preferred size 8"));
    }
}
