//! A served model: the model behind its own dynamic batcher. Handlers submit a request and
//! await its answer without blocking the async runtime (the batcher's worker thread runs
//! the model; the wait happens on the blocking pool). A request whose caller went away, or
//! whose job was cancelled, before its batch started is not run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use omnifuse_model::input::RawInput;
use omnifuse_model::output::Response;
use omnifuse_model::request::Parameters;
use omnifuse_model::{Error, Model};
use omnifuse_serve::policy::PolicyError;
use omnifuse_serve::{BatchPolicy, Batcher, Outcome, Ticket};

use crate::error::{ApiError, ApiResult};
use crate::stats::ModelStats;

/// Where a submitted request stands.
#[derive(Debug, Default)]
pub struct Progress(AtomicU8);

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;

impl Progress {
    /// Cancel it if it has not started; true when it was still waiting.
    pub fn cancel(&self) -> bool {
        self.0.compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Mark it started unless cancelled; true when it may run.
    fn start(&self) -> bool {
        self.0.compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// True once its batch has started it.
    pub fn is_running(&self) -> bool {
        self.0.load(Ordering::Acquire) == RUNNING
    }
}

/// One request on its way through the batcher.
pub struct Work {
    inputs: Vec<RawInput>,
    params: Parameters,
    progress: Arc<Progress>,
    submitted: Instant,
}

/// What the executor answers for one request.
pub type WorkResult = Result<Response, Error>;

/// A model, its name, its batcher and its statistics.
pub struct ServedModel {
    name: String,
    model: Arc<Model>,
    batcher: Batcher<Work, WorkResult>,
    stats: Arc<ModelStats>,
    policy: BatchPolicy,
    timeout: Option<Duration>,
}

/// A submitted request: await it with [`Submitted::wait`].
pub struct Submitted {
    ticket: Ticket<WorkResult>,
    progress: Arc<Progress>,
    submitted: Instant,
    stats: Arc<ModelStats>,
    timeout: Option<Duration>,
}

impl ServedModel {
    /// Serve `model` as `name`, batching its requests by `policy`; requests that wait longer
    /// than `timeout` in the queue are answered 504.
    pub fn new(name: &str, model: Model, policy: BatchPolicy, timeout: Option<Duration>) -> Result<Self, PolicyError> {
        let model = Arc::new(model);
        let stats = Arc::new(ModelStats::default());
        let (m, s) = (model.clone(), stats.clone());
        let batcher = Batcher::new(policy.clone(), move |batch: Vec<Work>| execute(&m, &s, batch))?;
        Ok(ServedModel { name: name.to_string(), model, batcher, stats, policy, timeout })
    }

    /// The name clients use.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Its statistics.
    pub fn stats(&self) -> &ModelStats {
        &self.stats
    }

    /// Its batch policy.
    pub fn policy(&self) -> &BatchPolicy {
        &self.policy
    }

    /// Requests waiting in its queue now.
    pub fn waiting(&self) -> usize {
        self.batcher.waiting()
    }

    /// Admit a request, or refuse it at once (503) when the queue is full.
    pub fn submit(&self, inputs: Vec<RawInput>, params: Parameters) -> ApiResult<Submitted> {
        let progress = Arc::new(Progress::default());
        let tokens = inputs.len().max(1);
        let submitted = Instant::now();
        let work = Work { inputs, params, progress: progress.clone(), submitted };
        let ticket = self.batcher.submit(work, tokens, 0, self.timeout).map_err(|e| {
            self.stats.record_refused();
            ApiError::from_submit(&e)
        })?;
        Ok(Submitted { ticket, progress, submitted, stats: self.stats.clone(), timeout: self.timeout })
    }

    /// Submit a request and await its answer. When the caller stops waiting (the client
    /// disconnected) before the request's batch started, the request is not run.
    pub async fn infer(&self, inputs: Vec<RawInput>, params: Parameters) -> ApiResult<Response> {
        let submitted = self.submit(inputs, params)?;
        let guard = CancelOnDrop(submitted.progress.clone());
        let result = submitted.wait().await;
        drop(guard);
        result
    }
}

/// Cancels a still-waiting request when dropped.
struct CancelOnDrop(Arc<Progress>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl Submitted {
    /// Its progress, to cancel it or see whether it started.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Await the answer on the blocking pool: 504 when it timed out in the queue, 422 when
    /// the model refused it, 500 when the server failed.
    pub async fn wait(self) -> ApiResult<Response> {
        let Submitted { ticket, progress, submitted, stats, timeout } = self;
        let outcome = tokio::task::spawn_blocking(move || ticket.wait())
            .await
            .unwrap_or_else(|e| Outcome::Failed(format!("the waiting task failed: {e}")));
        let elapsed = submitted.elapsed();
        let result = match outcome {
            Outcome::Done(Ok(r)) => Ok(r),
            Outcome::Done(Err(_)) if !progress.is_running() => {
                Err(ApiError::new(axum::http::StatusCode::CONFLICT, "the request was cancelled before it ran"))
            }
            Outcome::Done(Err(e)) => Err(ApiError::from_model(&e)),
            Outcome::TimedOut => Err(ApiError::new(
                axum::http::StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the request waited in the queue past the {} ms timeout without starting; retry later",
                    timeout.map_or(0, |t| t.as_millis())
                ),
            )),
            Outcome::Failed(m) => Err(ApiError::internal(m)),
        };
        stats.record_request(result.is_ok(), elapsed);
        result
    }
}

/// The executor: drop cancelled requests, run the others as one batch, record statistics.
fn execute(model: &Model, stats: &ModelStats, batch: Vec<Work>) -> Vec<WorkResult> {
    let started = Instant::now();
    let live: Vec<bool> = batch.iter().map(|w| w.progress.start()).collect();
    let run: Vec<(&[RawInput], &Parameters)> =
        batch.iter().zip(&live).filter(|(_, l)| **l).map(|(w, _)| (w.inputs.as_slice(), &w.params)).collect();
    let queued: Vec<Duration> =
        batch.iter().zip(&live).filter(|(_, l)| **l).map(|(w, _)| started.duration_since(w.submitted)).collect();
    let mut answers = if run.is_empty() { Vec::new() } else { model.run_batch(&run) }.into_iter();
    if !queued.is_empty() {
        stats.record_batch(&queued, started.elapsed());
    }
    live.iter()
        .map(|&l| match l {
            true => {
                answers.next().unwrap_or_else(|| Err(Error::Request("internal: the batch gave too few answers".into())))
            }
            false => Err(Error::Request("cancelled before it ran".into())),
        })
        .collect()
}
