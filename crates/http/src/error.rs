//! The one error type of every handler: an HTTP status and a message saying what was seen and
//! what was expected, sent as `{"error": "…"}`. Client mistakes are 4xx; 5xx is kept for the
//! server's own failures.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use omnifuse_serve::batcher::SubmitError;

/// An error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    /// 400: the request is malformed (not JSON, bad base64, wrong types).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such model, job or index.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 422: well-formed, but the model cannot answer it (an undecodable image, too many
    /// inputs, an unknown task).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 500: the server failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The error of a request the model refused or failed: the caller's fault (422) unless
    /// the runtime itself failed (500).
    pub fn from_model(e: &omnifuse_model::Error) -> Self {
        match e {
            omnifuse_model::Error::Input { .. } | omnifuse_model::Error::Request(_) => {
                Self::unprocessable(e.to_string())
            }
            _ => Self::internal(e.to_string()),
        }
    }

    /// The error of a request the batcher did not admit: 503.
    pub fn from_submit(e: &SubmitError) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, format!("{e}; retry later"))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

/// The result of a handler step.
pub type ApiResult<T> = Result<T, ApiError>;
