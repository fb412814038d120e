//! An asynchronous job's handle: poll it without blocking ([`Job::ready`], [`Job::state`]),
//! wait for its result ([`Job::result`]), or cancel it ([`Job::cancel`]).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::UnifiedModelClient;
use crate::error::{ClientError, Result};
use crate::response::Response;

/// Where a job stands.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    /// Waiting in the queue.
    Pending,
    /// Its batch is running.
    Running,
    /// Answered.
    Done(Box<Response>),
    /// The model refused or failed it: the HTTP status and message it would have had.
    Failed {
        /// The status (422: the request's fault; 504: it timed out in the queue; 500).
        status: u16,
        /// The server's message.
        message: String,
    },
    /// Cancelled before it ended.
    Cancelled,
}

impl JobState {
    /// True once it has ended (done, failed or cancelled).
    pub fn is_finished(&self) -> bool {
        !matches!(self, JobState::Pending | JobState::Running)
    }

    /// Its name in the API (`pending`, `running`, `done`, `failed`, `cancelled`).
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Done(_) => "done",
            JobState::Failed { .. } => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// The state from a `GET /v1/jobs/{id}` answer.
    pub(crate) fn from_json(path: &str, mut v: Value) -> Result<JobState> {
        let bad = |reason: String| ClientError::Decode { path: path.to_string(), reason };
        match v["status"].as_str() {
            Some("pending") => Ok(JobState::Pending),
            Some("running") => Ok(JobState::Running),
            Some("cancelled") => Ok(JobState::Cancelled),
            Some("done") => serde_json::from_value(v["result"].take())
                .map(|r| JobState::Done(Box::new(r)))
                .map_err(|e| bad(format!("the result is not a response: {e}"))),
            Some("failed") => Ok(JobState::Failed {
                status: v["error"]["status"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(500),
                message: v["error"]["message"].as_str().unwrap_or("no message").to_string(),
            }),
            other => Err(bad(format!("status {other:?}: expected pending, running, done, failed or cancelled"))),
        }
    }
}

/// A submitted job.
#[derive(Clone, Debug)]
pub struct Job {
    client: UnifiedModelClient,
    id: String,
}

impl Job {
    pub(crate) fn new(client: UnifiedModelClient, id: String) -> Self {
        Job { client, id }
    }

    /// Its id on the server.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its state now (one request).
    pub fn state(&self) -> Result<JobState> {
        self.client.job_state(&self.id)
    }

    /// True once it has ended: [`Job::result`] then answers without waiting. One request;
    /// never blocks on the job.
    pub fn ready(&self) -> Result<bool> {
        self.state().map(|s| s.is_finished())
    }

    /// Wait for it to end and return its result; a failed job is its HTTP error, a cancelled
    /// one [`ClientError::Job`].
    pub fn result(&self) -> Result<Response> {
        self.result_within(None)
    }

    /// The same, giving up with [`ClientError::Timeout`] after `limit`.
    pub fn result_within(&self, limit: Option<Duration>) -> Result<Response> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            match self.state()? {
                JobState::Done(r) => return Ok(*r),
                JobState::Failed { status, message } => {
                    return Err(ClientError::Http {
                        status,
                        method: "GET",
                        path: format!("/v1/jobs/{}", self.id),
                        message,
                    });
                }
                JobState::Cancelled => {
                    return Err(ClientError::Job { id: self.id.clone(), how: "was cancelled".into() });
                }
                JobState::Pending | JobState::Running => {}
            }
            if limit.is_some_and(|l| start.elapsed() >= l) {
                return Err(ClientError::Timeout {
                    endpoint: self.client.endpoint().to_string(),
                    reason: format!("job {} had not ended after {:?}", self.id, limit.unwrap_or_default()),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Cancel it: a queued job never runs, a running one's result is dropped; a job that has
    /// already ended is forgotten. The server's word: `cancelled` or `deleted`.
    pub fn cancel(&self) -> Result<String> {
        self.client.delete_job(&self.id)
    }
}
