//! Asynchronous jobs: `POST /v1/jobs` admits a request and answers 202 with its id at once;
//! `GET /v1/jobs/{id}` tells its status (`pending`, `running`, `done`, `failed`,
//! `cancelled`) with the result or the error; `DELETE /v1/jobs/{id}` cancels it (a queued job
//! never runs; a running one's result is dropped) or forgets a finished one. Finished jobs are
//! kept for the configured time to live, then purged.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::engine::Progress;
use crate::error::{ApiError, ApiResult};
use crate::limits;
use crate::state::AppState;
use crate::unified::{parse_request, response_json};

/// A job's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Waiting in the queue.
    Pending,
    /// Its batch is running.
    Running,
    /// Answered; the result is kept.
    Done,
    /// Failed; the error is kept.
    Failed,
    /// Cancelled by its owner.
    Cancelled,
}

impl Status {
    /// Its name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

struct Job {
    progress: Arc<Progress>,
    /// `None` while it has not ended.
    end: Option<End>,
}

struct End {
    status: Status,
    body: Option<Value>,
    at: Instant,
}

/// The jobs of the server.
#[derive(Default)]
pub struct JobStore {
    jobs: Mutex<HashMap<String, Job>>,
    seq: AtomicU64,
    ids: RandomState,
}

impl JobStore {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Job>> {
        // Each update is one map operation: a poisoned lock still holds a consistent map.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new pending job; its id.
    fn insert(&self, progress: Arc<Progress>) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let id = format!("job-{n}-{:016x}", self.ids.hash_one(n));
        self.lock().insert(id.clone(), Job { progress, end: None });
        id
    }

    /// Record a job's answer, unless it was cancelled or purged meanwhile.
    fn finish(&self, id: &str, result: ApiResult<Value>) {
        if let Some(job) = self.lock().get_mut(id)
            && job.end.is_none()
        {
            let (status, body) = match result {
                Ok(v) => (Status::Done, v),
                Err(e) => (Status::Failed, json!({"status": e.status.as_u16(), "message": e.message})),
            };
            job.end = Some(End { status, body: Some(body), at: Instant::now() });
        }
    }

    /// A job's status and its result or error.
    pub fn get(&self, id: &str) -> Option<(Status, Option<Value>)> {
        self.lock().get(id).map(|job| match &job.end {
            Some(end) => (end.status, end.body.clone()),
            None if job.progress.is_running() => (Status::Running, None),
            None => (Status::Pending, None),
        })
    }

    /// Cancel a job that has not ended (its status becomes `cancelled`), or forget one that
    /// has (`None` is returned for the new status). `Err` when there is no such job.
    fn cancel_or_forget(&self, id: &str) -> Result<Option<Status>, ()> {
        let mut jobs = self.lock();
        let job = jobs.get_mut(id).ok_or(())?;
        if job.end.is_some() {
            jobs.remove(id);
            return Ok(None);
        }
        job.progress.cancel();
        job.end = Some(End { status: Status::Cancelled, body: None, at: Instant::now() });
        Ok(Some(Status::Cancelled))
    }

    /// Drop jobs that ended more than `ttl` ago; how many.
    pub fn purge(&self, ttl: Duration) -> usize {
        let mut jobs = self.lock();
        let before = jobs.len();
        jobs.retain(|_, j| j.end.as_ref().is_none_or(|e| e.at.elapsed() < ttl));
        before - jobs.len()
    }

    /// Jobs held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no job is held.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// `POST /v1/jobs`: 202 with the job's id, or the request's error at once.
pub async fn create(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    let bytes = limits::body(body, state.config.max_body_bytes)?;
    let request = parse_request(&bytes)?;
    let limit = state.config.max_jobs;
    if state.jobs.len() >= limit && state.jobs.purge(Duration::from_secs(state.config.job_ttl_s)) == 0 {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{limit} jobs are held, the limit (max_jobs): fetch and DELETE finished jobs, or retry later"),
        ));
    }
    let model = state.default_model()?;
    let submitted = model.submit(request.inputs, request.parameters)?;
    let id = state.jobs.insert(submitted.progress());
    let (s, job) = (state.clone(), id.clone());
    tokio::spawn(async move {
        let result = submitted.wait().await.and_then(|r| response_json(&r));
        s.jobs.finish(&job, result);
    });
    let location = format!("/v1/jobs/{id}");
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(json!({"id": id, "status": "pending"})))
        .into_response())
}

/// `GET /v1/jobs/{id}`.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let (status, body) = state.jobs.get(&id).ok_or_else(|| unknown(&id))?;
    let mut out = json!({"id": id, "status": status.name()});
    match (status, body) {
        (Status::Done, Some(b)) => out["result"] = b,
        (Status::Failed, Some(b)) => out["error"] = b,
        _ => {}
    }
    Ok(Json(out))
}

/// `DELETE /v1/jobs/{id}`.
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    match state.jobs.cancel_or_forget(&id) {
        Ok(Some(status)) => Ok(Json(json!({"id": id, "status": status.name()}))),
        Ok(None) => Ok(Json(json!({"id": id, "status": "deleted"}))),
        Err(()) => Err(unknown(&id)),
    }
}

fn unknown(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "no job '{id}': it never existed, was deleted, or ended more than the time to live ago"
    ))
}

/// Purge ended jobs every so often, for as long as the runtime runs.
pub fn spawn_purger(state: AppState) {
    let ttl = Duration::from_secs(state.config.job_ttl_s);
    let period = (ttl / 4).clamp(Duration::from_millis(250), Duration::from_secs(60));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            state.jobs.purge(ttl);
        }
    });
}
