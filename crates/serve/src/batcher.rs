//! The dynamic batcher on a thread: [`Batcher::submit`] admits a request (or refuses it at once
//! when the queue is full) and returns a [`Ticket`]; one worker thread polls the
//! [`crate::queue::Queue`] on the real clock, answers expired requests with
//! [`Outcome::TimedOut`] without running them, and hands each closed batch to the
//! [`Executor`]. Dropping the batcher stops admission, runs what is still queued (each batch
//! closing as its policy says, so within one queue delay), and joins the worker: nothing
//! admitted is lost.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::policy::{BatchPolicy, PolicyError};
use crate::queue::{Decision, Queue};

/// Runs one batch: one result per request, in the order given.
pub trait Executor<T, R>: Send + Sync + 'static {
    /// Run `batch`.
    fn run(&self, batch: Vec<T>) -> Vec<R>;
}

impl<T, R, F> Executor<T, R> for F
where
    F: Fn(Vec<T>) -> Vec<R> + Send + Sync + 'static,
{
    fn run(&self, batch: Vec<T>) -> Vec<R> {
        self(batch)
    }
}

/// How a request ended.
#[derive(Debug, PartialEq)]
pub enum Outcome<R> {
    /// It ran; its result.
    Done(R),
    /// Its deadline passed while it waited; it never ran.
    TimedOut,
    /// The executor broke its contract (returned a wrong number of results).
    Failed(String),
}

/// Why a request was not admitted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is at capacity.
    #[error("overloaded: {waiting} requests waiting, queue capacity {capacity}")]
    Full {
        /// Requests waiting.
        waiting: usize,
        /// Capacity.
        capacity: usize,
    },
    /// The batcher is shutting down.
    #[error("the batcher is shutting down")]
    Stopped,
}

/// The answer to one admitted request, when it comes.
#[derive(Debug)]
pub struct Ticket<R> {
    rx: Receiver<Outcome<R>>,
}

impl<R> Ticket<R> {
    /// Block until the request ends.
    pub fn wait(self) -> Outcome<R> {
        self.rx.recv().unwrap_or_else(|_| Outcome::Failed("the batcher stopped without answering".into()))
    }
}

type Slot<T, R> = (T, Sender<Outcome<R>>);

struct State<T, R> {
    queue: Queue<Slot<T, R>>,
    stopping: bool,
    batch_sizes: Vec<usize>,
}

struct Shared<T, R> {
    state: Mutex<State<T, R>>,
    wake: Condvar,
    origin: Instant,
}

impl<T, R> Shared<T, R> {
    fn lock(&self) -> MutexGuard<'_, State<T, R>> {
        // A panic in another holder cannot leave the queue half-updated (every update is a
        // single Vec operation), so a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A dynamic batcher over an executor.
pub struct Batcher<T: Send + 'static, R: Send + 'static> {
    shared: Arc<Shared<T, R>>,
    worker: Option<JoinHandle<()>>,
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Start the worker thread.
    pub fn new(policy: BatchPolicy, executor: impl Executor<T, R>) -> Result<Self, PolicyError> {
        let queue = Queue::new(policy)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State { queue, stopping: false, batch_sizes: Vec::new() }),
            wake: Condvar::new(),
            origin: Instant::now(),
        });
        let s = shared.clone();
        let worker = std::thread::Builder::new()
            .name("omnifuse-batcher".into())
            .spawn(move || work(&s, &executor))
            .map_err(|e| PolicyError(format!("cannot start the batcher thread: {e}")))?;
        Ok(Batcher { shared, worker: Some(worker) })
    }

    /// Admit a request of `tokens` tokens at `priority` (higher runs first), answered with a
    /// timeout if it has not started within `timeout`. Refused at once when the queue is full.
    /// It joins group 0 (see [`Batcher::submit_in_group`]).
    pub fn submit(
        &self,
        payload: T,
        tokens: usize,
        priority: u8,
        timeout: Option<Duration>,
    ) -> Result<Ticket<R>, SubmitError> {
        self.submit_in_group(payload, tokens, priority, timeout, 0)
    }

    /// [`Batcher::submit`] for a request of group `group`: with the policy's grouping on, a
    /// batch holds one group's requests (plus any that have waited the maximum delay); a
    /// request's modality mix is the usual key.
    pub fn submit_in_group(
        &self,
        payload: T,
        tokens: usize,
        priority: u8,
        timeout: Option<Duration>,
        group: u64,
    ) -> Result<Ticket<R>, SubmitError> {
        let (tx, rx) = mpsc::channel();
        let mut st = self.shared.lock();
        if st.stopping {
            return Err(SubmitError::Stopped);
        }
        let now = self.shared.origin.elapsed();
        let deadline = timeout.map(|t| now + t);
        match st.queue.push_in_group(now, (payload, tx), tokens, priority, deadline, group) {
            Ok(_) => {
                drop(st);
                self.shared.wake.notify_one();
                Ok(Ticket { rx })
            }
            Err(r) => Err(SubmitError::Full { waiting: r.waiting, capacity: r.capacity }),
        }
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// The size of every batch run so far, in order.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.shared.lock().batch_sizes.clone()
    }
}

impl<T: Send + 'static, R: Send + 'static> Drop for Batcher<T, R> {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.wake.notify_all();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

fn work<T: 'static, R: 'static>(shared: &Shared<T, R>, executor: &dyn Executor<T, R>) {
    let mut st = shared.lock();
    loop {
        let now = shared.origin.elapsed();
        let poll = st.queue.poll(now);
        for (_, (_, tx)) in poll.expired {
            let _ = tx.send(Outcome::TimedOut);
        }
        match poll.decision {
            Decision::Idle if st.stopping => return,
            Decision::Idle => st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner()),
            Decision::WaitUntil(t) => {
                let wait = t.saturating_sub(now);
                st = shared.wake.wait_timeout(st, wait).unwrap_or_else(|p| p.into_inner()).0;
            }
            Decision::Run(batch) => {
                st.batch_sizes.push(batch.len());
                drop(st);
                let (payloads, senders): (Vec<T>, Vec<Sender<Outcome<R>>>) = batch.into_iter().map(|(_, s)| s).unzip();
                let n = payloads.len();
                let results = executor.run(payloads);
                if results.len() == n {
                    for (tx, r) in senders.into_iter().zip(results) {
                        let _ = tx.send(Outcome::Done(r));
                    }
                } else {
                    let msg = format!("the executor returned {} results for a batch of {n}", results.len());
                    for tx in senders {
                        let _ = tx.send(Outcome::Failed(msg.clone()));
                    }
                }
                st = shared.lock();
            }
        }
    }
}
