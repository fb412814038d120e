//! Request bodies: the size limit (413 past it, naming the limit) and the first checks of a
//! body — UTF-8, JSON, an object — each answered 400 with what was seen and what was expected.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// The body, or the error of reading it: 413 naming `limit` when it was too large.
pub fn body(body: Result<Bytes, BytesRejection>, limit: usize) -> ApiResult<Bytes> {
    body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than the limit of {limit} bytes (--max-body-bytes)"),
        ),
        status => ApiError::new(status, format!("cannot read the request body: {}", e.body_text())),
    })
}

/// The body as UTF-8 text.
pub fn text(bytes: &Bytes) -> ApiResult<&str> {
    std::str::from_utf8(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not UTF-8 ({e}): expected JSON")))
}

/// The body as a JSON object.
pub fn json_object(bytes: &Bytes) -> ApiResult<Map<String, Value>> {
    let value: Value = serde_json::from_str(text(bytes)?)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    match value {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::bad_request(format!("the request body is {}: expected a JSON object", kind(&other)))),
    }
}

/// A JSON value's kind, for messages: the model's request parser's own wording.
pub use omnifuse_model::request::kind;
