//! The unified API, `POST /v1/infer`: a request in omnifuse's JSON format
//! (`{"inputs":[{"text":…},{"image":"<base64>"},…],"parameters":{"task_type":…}}`) answered
//! with each asked head's result and the time per layer — the same JSON as
//! `omnifuse run --json`.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header;
use axum::response::IntoResponse;
use omnifuse_model::output::Response;
use omnifuse_model::request::Request;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::limits;
use crate::state::AppState;

/// `POST /v1/infer`.
pub async fn infer(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::response::Response> {
    let bytes = limits::body(body, state.config.max_body_bytes)?;
    let request = parse_request(&bytes)?;
    let model = state.default_model()?;
    let response = model.infer(request.inputs, request.parameters).await?;
    let text = serde_json::to_string(&response)
        .map_err(|e| ApiError::internal(format!("cannot serialise the response: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], text).into_response())
}

/// A body in the request format; its errors are 400 and name what was seen and expected.
pub fn parse_request(bytes: &Bytes) -> ApiResult<Request> {
    Request::from_json(limits::text(bytes)?).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A response as a JSON value that prints as `omnifuse run --json` prints it: through its
/// text, so each `f32` keeps its shortest decimal form rather than its exact `f64` expansion.
pub fn response_json(response: &Response) -> ApiResult<Value> {
    let text = serde_json::to_string(response)
        .map_err(|e| ApiError::internal(format!("cannot serialise the response: {e}")))?;
    serde_json::from_str(&text).map_err(|e| ApiError::internal(format!("cannot re-read the response: {e}")))
}

/// Numbers as JSON in their shortest `f32` decimal form.
pub fn floats(values: &[f32]) -> Value {
    let text = serde_json::to_string(values).unwrap_or_else(|_| "[]".into());
    serde_json::from_str(&text).unwrap_or(Value::Null)
}
