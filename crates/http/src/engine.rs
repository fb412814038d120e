//! A served model: the model behind its own dynamic batcher. Handlers submit a request and
//! await its answer without blocking the async runtime: the batcher's worker thread runs the
//! model and sends each answer down a one-shot channel the handler awaits. A request whose
//! caller went away, or whose job was cancelled, before its batch started is not run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use omnifuse_model::input::{RawInput, mix_key};
use omnifuse_model::output::Response;
use omnifuse_model::request::Parameters;
use omnifuse_model::{Error, Model};
use omnifuse_serve::policy::PolicyError;
use omnifuse_serve::{BatchPolicy, Batcher};
use tokio::sync::oneshot;

use crate::error::{ApiError, ApiResult};
use crate::monitor::{Monitor, MonitoringConfig};
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
    reply: Reply,
}

/// How a request ended, as its handler learns it.
enum Answer {
    /// The model ran it.
    Done(WorkResult),
    /// Its queue deadline passed before its batch started.
    TimedOut,
    /// It was dropped unanswered (the worker stopped).
    Lost,
    /// The model failed on its batch (a panic, caught).
    Failed(String),
}

/// The sending end of a request's answer. Dropped unanswered — the batcher drops a request
/// it will not run — it answers [`Answer::TimedOut`] past the deadline, else [`Answer::Lost`].
struct Reply {
    tx: Option<oneshot::Sender<Answer>>,
    deadline: Option<Instant>,
}

impl Reply {
    fn send(mut self, answer: Answer) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(answer);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let expired = self.deadline.is_some_and(|d| Instant::now() >= d);
            let _ = tx.send(if expired { Answer::TimedOut } else { Answer::Lost });
        }
    }
}

/// What the executor answers for one request.
pub type WorkResult = Result<Response, Error>;

/// A model, its name, its batcher and its statistics.
pub struct ServedModel {
    name: String,
    model: Arc<Model>,
    batcher: Batcher<Work, ()>,
    stats: Arc<ModelStats>,
    monitor: Arc<Monitor>,
    ready: AtomicBool,
    policy: BatchPolicy,
    timeout: Option<Duration>,
}

/// A submitted request: await it with [`Submitted::wait`].
pub struct Submitted {
    answer: oneshot::Receiver<Answer>,
    progress: Arc<Progress>,
    submitted: Instant,
    stats: Arc<ModelStats>,
    monitor: Arc<Monitor>,
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
        let monitor = Arc::new(Monitor::new(name, MonitoringConfig::default()));
        let ready = AtomicBool::new(false);
        Ok(ServedModel { name: name.to_string(), model, batcher, stats, monitor, ready, policy, timeout })
    }

    /// The same, monitored with these settings (the default otherwise).
    pub fn with_monitoring(mut self, config: MonitoringConfig) -> Self {
        self.monitor = Arc::new(Monitor::new(&self.name, config));
        self
    }

    /// Run one warm-up request (a short text, every head) straight through the model — not
    /// through the batcher, so it counts in no statistics — and mark the model ready when it
    /// succeeds; the error says why it failed.
    pub fn warm_up(&self) -> Result<(), String> {
        let inputs = [RawInput::Text("warm-up".into())];
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.model.run(&inputs, &Parameters::default())))
        {
            Ok(Ok(_)) => {
                self.ready.store(true, Ordering::Release);
                Ok(())
            }
            Ok(Err(e)) => Err(format!("the warm-up request of model {} failed: {e}", self.name)),
            Err(_) => Err(format!("the warm-up request of model {} panicked", self.name)),
        }
    }

    /// Whether its warm-up request has run.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Its traffic monitor.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
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
        let mix = mix_key(&inputs);
        let submitted = Instant::now();
        let (tx, answer) = oneshot::channel();
        let reply = Reply { tx: Some(tx), deadline: self.timeout.map(|t| submitted + t) };
        let work = Work { inputs, params, progress: progress.clone(), submitted, reply };
        // The answer comes down the one-shot channel; the batcher's own ticket is not needed.
        let _ticket = self.batcher.submit_in_group(work, tokens, 0, self.timeout, mix).map_err(|e| {
            self.stats.record_refused();
            let e = ApiError::from_submit(&e);
            self.monitor.record_error(e.status.as_u16());
            e
        })?;
        Ok(Submitted {
            answer,
            progress,
            submitted,
            stats: self.stats.clone(),
            monitor: self.monitor.clone(),
            timeout: self.timeout,
        })
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

    /// Await the answer: 504 when it timed out in the queue, 409 when it was cancelled, 422
    /// when the model refused it, 500 when the server failed.
    pub async fn wait(self) -> ApiResult<Response> {
        let Submitted { answer, progress, submitted, stats, monitor, timeout } = self;
        let answer = answer.await.unwrap_or(Answer::Lost);
        let elapsed = submitted.elapsed();
        let result = match answer {
            Answer::Done(Ok(r)) => Ok(r),
            Answer::Done(Err(_)) if !progress.is_running() => {
                Err(ApiError::new(axum::http::StatusCode::CONFLICT, "the request was cancelled before it ran"))
            }
            Answer::Done(Err(e)) => Err(ApiError::from_model(&e)),
            Answer::TimedOut => Err(ApiError::new(
                axum::http::StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the request waited in the queue past the {} ms timeout without starting; retry later",
                    timeout.map_or(0, |t| t.as_millis())
                ),
            )),
            Answer::Failed(m) => Err(ApiError::internal(m)),
            Answer::Lost => {
                Err(ApiError::internal("the request was dropped without an answer: the model's worker stopped"))
            }
        };
        stats.record_request(result.is_ok(), elapsed);
        match &result {
            Ok(r) => monitor.record_answer(r, elapsed),
            Err(e) => monitor.record_error(e.status.as_u16()),
        }
        result
    }
}

/// The executor: drop cancelled requests, run the others as one batch, send each its
/// answer, record statistics.
fn execute(model: &Model, stats: &ModelStats, batch: Vec<Work>) -> Vec<()> {
    let started = Instant::now();
    let n = batch.len();
    let (live, cancelled): (Vec<Work>, Vec<Work>) = batch.into_iter().partition(|w| w.progress.start());
    for w in cancelled {
        w.reply.send(Answer::Done(Err(Error::Request("cancelled before it ran".into()))));
    }
    if !live.is_empty() {
        let run: Vec<(&[RawInput], &Parameters)> = live.iter().map(|w| (w.inputs.as_slice(), &w.params)).collect();
        let queued: Vec<Duration> = live.iter().map(|w| started.duration_since(w.submitted)).collect();
        // A panic inside the model is a bug, not a client's doing: answer the batch with an
        // error and keep the worker (and with it the server) alive.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.run_batch(&run))) {
            Ok(answers) => {
                stats.record_batch(&queued, started.elapsed());
                let mut answers = answers.into_iter();
                for w in live {
                    let a = answers
                        .next()
                        .unwrap_or_else(|| Err(Error::Request("internal: the batch gave too few answers".into())));
                    w.reply.send(Answer::Done(a));
                }
            }
            Err(p) => {
                let why = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                for w in live {
                    w.reply.send(Answer::Failed(format!("the model failed on this request's batch: {why}")));
                }
            }
        }
    }
    vec![(); n]
}
