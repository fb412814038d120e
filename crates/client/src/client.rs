//! [`UnifiedModelClient`]: the calls of the unified API over a pooled, blocking HTTP/1.1
//! connection — inference, jobs, health, the retrieval index and search — each answer read
//! as JSON and each error status turned into a [`ClientError::Http`] with the server's
//! message.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::{ClientError, Result};
use crate::input::{Input, inputs_json};
use crate::job::{Job, JobState};
use crate::params::Parameters;
use crate::response::{Response, SearchResult};

/// Largest answer body read (embeddings of a large index listing fit well within it).
const MAX_ANSWER_BYTES: u64 = 256 << 20;
/// How long connecting may take before it is an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one omnifuse server. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct UnifiedModelClient {
    agent: ureq::Agent,
    endpoint: String,
    authorization: Option<String>,
}

impl std::fmt::Debug for UnifiedModelClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("UnifiedModelClient")
            .field("endpoint", &self.endpoint)
            .field("api_key", &self.authorization.as_ref().map(|_| "…"))
            .finish()
    }
}

/// The HTTP methods the client uses.
#[derive(Clone, Copy)]
enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

impl UnifiedModelClient {
    /// A client of the server at `endpoint` (`http://host:port`, or `host:port`), sending
    /// `api_key` as a bearer token when given. Nothing is sent until the first call.
    pub fn new(endpoint: &str, api_key: Option<&str>) -> Result<Self> {
        Self::with_timeout(endpoint, api_key, None)
    }

    /// The same, with every call limited to `timeout` (connecting, sending and reading the
    /// answer together); `None`: calls wait as long as the server takes.
    pub fn with_timeout(endpoint: &str, api_key: Option<&str>, timeout: Option<Duration>) -> Result<Self> {
        let endpoint = normalise(endpoint)?;
        if let Some(k) = api_key
            && (k.is_empty() || k.chars().any(|c| c.is_control() || c == ' '))
        {
            return Err(ClientError::Endpoint {
                endpoint,
                reason: "the API key is empty or holds spaces or control characters: expected one token".into(),
            });
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(timeout)
            .max_idle_connections(256)
            .max_idle_connections_per_host(256)
            .build()
            .into();
        Ok(UnifiedModelClient { agent, endpoint, authorization: api_key.map(|k| format!("Bearer {k}")) })
    }

    /// The server's base URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Run one request and wait for its answer (`POST /v1/infer`).
    pub fn infer(&self, inputs: &[Input], params: &Parameters) -> Result<Response> {
        self.infer_json(inputs, params).and_then(|v| decode("/v1/infer", v))
    }

    /// The same, the answer as the server's JSON.
    pub fn infer_json(&self, inputs: &[Input], params: &Parameters) -> Result<Value> {
        self.send(Method::Post, "/v1/infer", &[], Some(request_body(inputs, params)))
    }

    /// Submit a request as an asynchronous job (`POST /v1/jobs`); the handle polls, waits for
    /// or cancels it. A refusal (a full queue: 503) is an error here, at once.
    pub fn submit_async(&self, inputs: &[Input], params: &Parameters) -> Result<Job> {
        let v = self.send(Method::Post, "/v1/jobs", &[], Some(request_body(inputs, params)))?;
        let id = v["id"].as_str().ok_or_else(|| ClientError::Decode {
            path: "/v1/jobs".into(),
            reason: format!("the answer {v} has no \"id\" string"),
        })?;
        Ok(Job::new(self.clone(), id.to_string()))
    }

    /// A handle on an existing job, by id (as `submit_async` or `omnifuse client submit`
    /// printed it).
    pub fn job(&self, id: &str) -> Result<Job> {
        check_id(id)?;
        Ok(Job::new(self.clone(), id.to_string()))
    }

    /// A job's state now (`GET /v1/jobs/{id}`).
    pub(crate) fn job_state(&self, id: &str) -> Result<JobState> {
        let path = format!("/v1/jobs/{id}");
        let v = self.send(Method::Get, &path, &[], None)?;
        JobState::from_json(&path, v)
    }

    /// Cancel a job that has not ended, or forget one that has (`DELETE /v1/jobs/{id}`); the
    /// status the server answers (`cancelled` or `deleted`).
    pub(crate) fn delete_job(&self, id: &str) -> Result<String> {
        let path = format!("/v1/jobs/{id}");
        let v = self.send(Method::Delete, &path, &[], None)?;
        Ok(v["status"].as_str().unwrap_or("unknown").to_string())
    }

    /// True when the server process is up (`GET /v2/health/live`).
    pub fn health(&self) -> Result<bool> {
        self.probe("/v2/health/live")
    }

    /// True when every model has warmed up and takes requests (`GET /v2/health/ready`: 503
    /// until then, reported as `false`).
    pub fn ready(&self) -> Result<bool> {
        self.probe("/v2/health/ready")
    }

    fn probe(&self, path: &str) -> Result<bool> {
        match self.send(Method::Get, path, &[], None) {
            Ok(_) => Ok(true),
            Err(ClientError::Http { status: 503, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Add inputs to the named retrieval index under `keys` (one per input; empty: the server
    /// names them); the number of entries the index then holds.
    pub fn index_add(&self, index: &str, inputs: &[Input], keys: &[&str]) -> Result<u64> {
        let mut body = json!({ "inputs": inputs_json(inputs) });
        if !keys.is_empty() {
            body["keys"] = json!(keys);
        }
        let path = format!("/v1/index/{index}");
        let v = self.send(Method::Post, &path, &[], Some(body))?;
        v["entries"]
            .as_u64()
            .ok_or_else(|| ClientError::Decode { path, reason: format!("the answer {v} has no \"entries\" count") })
    }

    /// The `k` entries of the index most similar to a text (`GET /v1/search`).
    pub fn search_text(&self, index: &str, text: &str, k: usize) -> Result<SearchResult> {
        let k = k.to_string();
        let v = self.send(Method::Get, "/v1/search", &[("index", index), ("text", text), ("k", &k)], None)?;
        decode("/v1/search", v)
    }

    /// The `k` entries of the index most similar to one input of any modality
    /// (`POST /v1/search`).
    pub fn search(&self, index: &str, input: &Input, k: usize) -> Result<SearchResult> {
        let k = k.to_string();
        let body = json!({ "inputs": [input.to_json()] });
        let v = self.send(Method::Post, "/v1/search", &[("index", index), ("k", &k)], Some(body))?;
        decode("/v1/search", v)
    }

    /// The Prometheus text of `GET /metrics`.
    pub fn metrics(&self) -> Result<String> {
        self.call(Method::Get, "/metrics", &[], None)
    }

    /// A call whose answer is JSON.
    fn send(&self, method: Method, path: &str, query: &[(&str, &str)], body: Option<Value>) -> Result<Value> {
        let text = self.call(method, path, query, body)?;
        serde_json::from_str(&text).map_err(|e| ClientError::Decode {
            path: path.to_string(),
            reason: format!("the answer is not JSON ({e}): {}", clip(&text)),
        })
    }

    /// One HTTP exchange: the body of a 2xx answer, or the error.
    fn call(&self, method: Method, path: &str, query: &[(&str, &str)], body: Option<Value>) -> Result<String> {
        let url = format!("{}{path}", self.endpoint);
        let answer = match (method, body) {
            (Method::Post, body) => {
                let mut r = self.agent.post(&url).header("Content-Type", "application/json");
                r = query.iter().fold(r, |r, (k, v)| r.query(*k, *v));
                if let Some(a) = &self.authorization {
                    r = r.header("Authorization", a);
                }
                r.send(body.map(|b| b.to_string()).unwrap_or_default())
            }
            (Method::Get | Method::Delete, _) => {
                let mut r = match method {
                    Method::Delete => self.agent.delete(&url),
                    _ => self.agent.get(&url),
                };
                r = query.iter().fold(r, |r, (k, v)| r.query(*k, *v));
                if let Some(a) = &self.authorization {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
        };
        let mut answer = answer.map_err(|e| self.transport(e))?;
        let status = answer.status().as_u16();
        let text =
            answer.body_mut().with_config().limit(MAX_ANSWER_BYTES).read_to_string().map_err(|e| self.transport(e))?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| clip(&text));
        Err(ClientError::Http { status, method: method.name(), path: path.to_string(), message })
    }

    /// The error of a failed exchange, naming the endpoint.
    fn transport(&self, e: ureq::Error) -> ClientError {
        let endpoint = self.endpoint.clone();
        match e {
            ureq::Error::Io(io) if is_connect(io.kind()) => ClientError::Connect { endpoint, reason: io.to_string() },
            ureq::Error::ConnectionFailed => ClientError::Connect { endpoint, reason: "the connection failed".into() },
            ureq::Error::HostNotFound => ClientError::Connect { endpoint, reason: "the host name is not known".into() },
            ureq::Error::Timeout(t) => ClientError::Timeout { endpoint, reason: t.to_string() },
            other => ClientError::Transport { endpoint, reason: other.to_string() },
        }
    }
}

fn is_connect(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(kind, ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable | NotFound)
}

/// The body of an inference request.
fn request_body(inputs: &[Input], params: &Parameters) -> Value {
    json!({ "inputs": inputs_json(inputs), "parameters": params.to_json() })
}

/// A JSON answer as a typed one.
fn decode<T: DeserializeOwned>(path: &str, v: Value) -> Result<T> {
    serde_json::from_value(v)
        .map_err(|e| ClientError::Decode { path: path.to_string(), reason: format!("not the documented shape: {e}") })
}

/// At most 300 characters of a text, for messages.
fn clip(text: &str) -> String {
    match text.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// `http://host:port` without a trailing slash; `host:port` gets `http://`.
fn normalise(endpoint: &str) -> Result<String> {
    let bad = |reason: &str| ClientError::Endpoint { endpoint: endpoint.to_string(), reason: reason.to_string() };
    let trimmed = endpoint.trim().trim_end_matches('/');
    let url = match trimmed.split_once("://") {
        Some(("http", rest)) if !rest.is_empty() => trimmed.to_string(),
        Some(("https", _)) => {
            return Err(bad(
                "https is not supported by this client: expected http://host:port (e.g. through a TLS-terminating proxy on loopback)",
            ));
        }
        Some((scheme, _)) => {
            return Err(bad(&format!("the scheme '{scheme}' is not HTTP: expected http://host:port")));
        }
        None if !trimmed.is_empty() => format!("http://{trimmed}"),
        None => return Err(bad("it is empty: expected http://host:port")),
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it holds spaces: expected http://host:port"));
    }
    Ok(url)
}

/// A job id as the server makes them (letters, digits, `-`, `_`).
fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ClientError::Input {
            what: format!("job id '{id}'"),
            reason: "expected letters, digits, '-' and '_' only, as `submit` printed it".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalised_or_refused_with_a_reason() {
        assert_eq!(normalise("http://127.0.0.1:8080/").ok().as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(normalise("localhost:9000").ok().as_deref(), Some("http://localhost:9000"));
        for (bad, want) in [("https://x", "https is not supported"), ("ftp://x", "'ftp'"), ("", "empty")] {
            let e = normalise(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(want), "{bad}: {e}");
        }
        assert!(check_id("job-3-00ff").is_ok());
        assert!(check_id("../metrics").is_err());
        let e = UnifiedModelClient::new("x:1", Some("two words")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("API key"), "{e}");
    }
}
