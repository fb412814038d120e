//! The client's one error type: the server could not be reached, it answered an HTTP error
//! (with its status and its `{"error": …}` message), or its answer could not be read.

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint given to the client cannot be used.
    #[error("bad endpoint '{endpoint}': {reason}")]
    Endpoint {
        /// What was given.
        endpoint: String,
        /// What is wrong with it and what was expected.
        reason: String,
    },
    /// No connection could be made (refused, unknown host, unreachable).
    #[error("cannot connect to {endpoint}: {reason} (is `omnifuse serve` running there?)")]
    Connect {
        /// The server's base URL.
        endpoint: String,
        /// The system's reason.
        reason: String,
    },
    /// The call took longer than the client's timeout.
    #[error("no answer from {endpoint} within the timeout: {reason}")]
    Timeout {
        /// The server's base URL.
        endpoint: String,
        /// Which phase timed out.
        reason: String,
    },
    /// The connection failed after it was made (reset, closed early, malformed HTTP).
    #[error("talking to {endpoint}: {reason}")]
    Transport {
        /// The server's base URL.
        endpoint: String,
        /// What failed.
        reason: String,
    },
    /// The server answered with an HTTP error status.
    #[error("HTTP {status} from {method} {path}: {message}")]
    Http {
        /// The HTTP status (4xx: the request's fault; 429/503: overloaded, retry later).
        status: u16,
        /// The method of the call.
        method: &'static str,
        /// The path of the call.
        path: String,
        /// The server's `error` message, or the body as text when it had none.
        message: String,
    },
    /// The server's answer is not what its API documents.
    #[error("unexpected answer to {path}: {reason}")]
    Decode {
        /// The path of the call.
        path: String,
        /// What was seen and what was expected.
        reason: String,
    },
    /// An input could not be prepared (an unreadable file, an unknown file kind).
    #[error("input {what}: {reason}")]
    Input {
        /// Which input.
        what: String,
        /// What was seen and what was expected.
        reason: String,
    },
    /// The job ended without a result.
    #[error("job {id} {how}")]
    Job {
        /// The job's id.
        id: String,
        /// How it ended (`was cancelled`, …).
        how: String,
    },
}

impl ClientError {
    /// The HTTP status of an [`ClientError::Http`] error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for a refusal because the server is overloaded (429 or 503): retry later.
    pub fn is_overload(&self) -> bool {
        matches!(self.status(), Some(429 | 503))
    }
}

/// A result of the client.
pub type Result<T> = std::result::Result<T, ClientError>;
