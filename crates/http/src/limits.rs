//! Request bodies: the content type (415 unless JSON), the size limit (413 past it, naming the
//! limit) and the first checks of a body — UTF-8, JSON, an object — each answered 400 with what
//! was seen and what was expected.

use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::rejection::BytesRejection;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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

/// Whether a `Content-Type` may carry a JSON body: `application/json`, any `application/*+json`,
/// or `application/x-www-form-urlencoded` — what `curl -d` sends unless told otherwise, so the
/// documented `curl` lines work; the body is read as JSON whatever the label.
fn json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json"
        || essence == "application/x-www-form-urlencoded"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The middleware: a request that sends a body (POST, PUT, PATCH) with a `Content-Type` that
/// is not JSON gets 415 naming it; no `Content-Type` at all is taken as JSON.
pub async fn require_json(request: Request, next: Next) -> Response {
    let sends_body = matches!(*request.method(), Method::POST | Method::PUT | Method::PATCH);
    if let Some(value) = request.headers().get(header::CONTENT_TYPE).filter(|_| sends_body) {
        let text = String::from_utf8_lossy(value.as_bytes());
        if !json_content_type(&text) {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("the Content-Type is \"{text}\": expected application/json"),
            )
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::json_content_type;

    #[test]
    fn json_content_types() {
        for ok in ["application/json", "Application/JSON; charset=utf-8", "application/problem+json"] {
            assert!(json_content_type(ok), "{ok}");
        }
        assert!(json_content_type("application/x-www-form-urlencoded"));
        for bad in ["text/plain", "application/xml", "multipart/form-data; boundary=x", "image/png", ""] {
            assert!(!json_content_type(bad), "{bad}");
        }
    }
}
