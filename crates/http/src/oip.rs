//! The Open Inference Protocol v2 (KServe / Triton REST): server metadata and health, model
//! metadata, readiness, configuration and statistics, and `POST /v2/models/{m}/infer` with
//! typed tensors.
//!
//! Inputs are `BYTES` tensors named `text`, `image`, `audio` or `video`, any number of each,
//! in any order; every element is one model input, taken tensor by tensor, element by element.
//! In JSON a `BYTES` element is a string: a `text` element is the text itself, an `image`,
//! `audio` or `video` element is the file (PNG/JPEG, WAV, Y4M) in base64 (standard alphabet;
//! a tensor may say so with `"parameters":{"binary_data_encoding":"base64"}`, which is also
//! the default). The binary-data extension is not supported. Request `parameters` may carry
//! the model's own (`task_type`, `max_tokens`, `temperature`, `top_k`, `seed`).
//!
//! Outputs, one tensor per head and value: a classification head `H` gives `H` (FP32, the
//! label probabilities) and `H_label` (BYTES); a retrieval head gives `H` (FP32, the whole
//! request's embedding) and `H_inputs` (FP32, one row per input); a generation head gives `H`
//! (BYTES, the text) and `H_tokens` (INT32). Asking for some `outputs` runs only their heads.

use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use omnifuse_model::config::{HeadConfig, HeadKind};
use omnifuse_model::output::{HeadResult, Response};
use omnifuse_model::request::Request;
use serde_json::{Map, Value, json};

use crate::engine::ServedModel;
use crate::error::{ApiError, ApiResult};
use crate::limits::{self, kind};
use crate::state::AppState;
use crate::unified::floats;

/// The one version of every served model.
pub const VERSION: &str = "1";
/// Names of the input tensors.
const INPUTS: [&str; 4] = ["text", "image", "audio", "video"];
/// Request parameters of the protocol or of Triton that do not concern the model.
const PROTOCOL_PARAMETERS: [&str; 7] =
    ["binary_data_output", "priority", "timeout", "sequence_id", "sequence_start", "sequence_end", "headers"];

/// `GET /v2`: server metadata.
pub async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "omnifuse",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["model_configuration", "statistics"],
    }))
}

/// `GET /v2/health/live`.
pub async fn live() -> Json<Value> {
    Json(json!({"live": true}))
}

/// 200 when ready, 503 otherwise, with `{"ready": …}` and what else is given.
fn readiness(ready: bool, mut body: Value) -> (StatusCode, Json<Value>) {
    body["ready"] = json!(ready);
    (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}

/// `GET /v2/health/ready`: 200 once every model's weights are loaded and its warm-up request
/// has run; 503 before.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    readiness(!state.models.is_empty() && state.models.iter().all(|m| m.is_ready()), json!({}))
}

/// The model of a `{m}` path, at an optional `{v}` version.
fn model_at(state: &AppState, name: &str, version: Option<&str>) -> ApiResult<std::sync::Arc<ServedModel>> {
    let m = state.model(name)?;
    match version {
        None | Some(VERSION) | Some("") => Ok(m),
        Some(v) => Err(ApiError::not_found(format!("model '{name}' has no version '{v}': it has version {VERSION}"))),
    }
}

/// The output tensors of a head: (name, datatype, shape).
fn head_outputs(h: &HeadConfig) -> Vec<(String, &'static str, Vec<i64>)> {
    let n = &h.name;
    match &h.kind {
        HeadKind::Classification { labels, .. } => {
            vec![(n.clone(), "FP32", vec![labels.len() as i64]), (format!("{n}_label"), "BYTES", vec![1])]
        }
        HeadKind::Retrieval { dim } => {
            vec![(n.clone(), "FP32", vec![*dim as i64]), (format!("{n}_inputs"), "FP32", vec![-1, *dim as i64])]
        }
        HeadKind::Generation { .. } => vec![(n.clone(), "BYTES", vec![1]), (format!("{n}_tokens"), "INT32", vec![-1])],
    }
}

fn all_outputs(m: &ServedModel) -> Vec<(String, String, &'static str, Vec<i64>)> {
    m.model()
        .config()
        .heads
        .iter()
        .flat_map(|h| head_outputs(h).into_iter().map(move |(n, d, s)| (h.name.clone(), n, d, s)))
        .collect()
}

fn metadata(m: &ServedModel) -> Value {
    let inputs: Vec<Value> = INPUTS.iter().map(|n| json!({"name": n, "datatype": "BYTES", "shape": [-1]})).collect();
    let outputs: Vec<Value> =
        all_outputs(m).into_iter().map(|(_, n, d, s)| json!({"name": n, "datatype": d, "shape": s})).collect();
    json!({
        "name": m.name(),
        "versions": [VERSION],
        "platform": "omnifuse",
        "inputs": inputs,
        "outputs": outputs,
    })
}

/// `GET /v2/models/{m}`.
pub async fn model_metadata(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let m = model_at(&state, &name, None)?;
    Ok(Json(metadata(&m)))
}

/// `GET /v2/models/{m}/versions/{v}`.
pub async fn model_version_metadata(
    State(state): State<AppState>,
    Path((name, v)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let m = model_at(&state, &name, Some(&v))?;
    Ok(Json(metadata(&m)))
}

/// `GET /v2/models/{m}/ready`.
pub async fn model_ready(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let m = model_at(&state, &name, None)?;
    Ok(readiness(m.is_ready(), json!({"name": m.name()})))
}

/// `GET /v2/models/{m}/config`: the model configuration as Triton's tools read it.
pub async fn model_config(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let m = model_at(&state, &name, None)?;
    let triton_type = |d: &str| match d {
        "FP32" => "TYPE_FP32",
        "INT32" => "TYPE_INT32",
        _ => "TYPE_STRING",
    };
    let input: Vec<Value> = INPUTS
        .iter()
        .map(
            |n| json!({"name": n, "data_type": "TYPE_STRING", "format": "FORMAT_NONE", "dims": [-1], "optional": true}),
        )
        .collect();
    let output: Vec<Value> = all_outputs(&m)
        .into_iter()
        .map(|(_, n, d, s)| json!({"name": n, "data_type": triton_type(d), "dims": s}))
        .collect();
    let p = m.policy();
    let timeout_us = state.config.request_timeout_ms * 1000;
    Ok(Json(json!({
        "name": m.name(),
        "platform": "omnifuse",
        "backend": "omnifuse",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": 0,
        "input": input,
        "output": output,
        "dynamic_batching": {
            "preferred_batch_size": p.preferred_sizes,
            "max_queue_delay_microseconds": p.max_delay.as_micros() as u64,
            "default_queue_policy": {
                "max_queue_size": p.queue_capacity,
                "default_timeout_microseconds": timeout_us,
                "allow_timeout_override": false,
                "timeout_action": "REJECT",
            },
        },
        "instance_group": [{"name": format!("{}_0", m.name()), "kind": "KIND_MODEL", "count": 1}],
        "parameters": {
            "backend_device": {"string_value": m.model().backend_name()},
            "max_batch_requests": {"string_value": p.max_batch.to_string()},
            "same_modality_grouping": {"string_value": p.grouping.to_string()},
        },
    })))
}

/// `GET /v2/models/{m}/stats`: Triton's statistics extension.
pub async fn model_stats(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let m = model_at(&state, &name, None)?;
    Ok(Json(json!({"model_stats": [m.stats().snapshot().triton_json(m.name(), VERSION)]})))
}

/// `GET /v2/models/stats`: every model's statistics.
pub async fn all_stats(State(state): State<AppState>) -> Json<Value> {
    let stats: Vec<Value> = state.models.iter().map(|m| m.stats().snapshot().triton_json(m.name(), VERSION)).collect();
    Json(json!({"model_stats": stats}))
}

/// `POST /v2/models/{m}/infer`.
pub async fn infer(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    infer_at(state, name, None, body).await
}

/// `POST /v2/models/{m}/versions/{v}/infer`.
pub async fn infer_version(
    State(state): State<AppState>,
    Path((name, v)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    infer_at(state, name, Some(v), body).await
}

async fn infer_at(
    state: AppState,
    name: String,
    version: Option<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let m = model_at(&state, &name, version.as_deref())?;
    let bytes = limits::body(body, state.config.max_body_bytes)?;
    let top = limits::json_object(&bytes)?;
    if let Some(key) = top.keys().find(|k| !matches!(k.as_str(), "id" | "inputs" | "outputs" | "parameters")) {
        return Err(ApiError::bad_request(format!(
            "unknown key \"{key}\": expected id, inputs, outputs or parameters"
        )));
    }
    let id = match top.get("id") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(ApiError::bad_request(format!("\"id\" is {}: expected a string", kind(other)))),
    };
    let wanted = requested_outputs(&m, top.get("outputs"))?;
    let mut params = match top.get("parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(other) => {
            return Err(ApiError::bad_request(format!("\"parameters\" is {}: expected an object", kind(other))));
        }
    };
    params.retain(|k, _| !PROTOCOL_PARAMETERS.contains(&k.as_str()));
    if let Some(w) = &wanted
        && !params.contains_key("task_type")
    {
        let heads: BTreeSet<&str> = w.iter().map(|(head, _)| head.as_str()).collect();
        params.insert("task_type".into(), json!(heads.into_iter().collect::<Vec<_>>()));
    }
    let inputs = unified_inputs(top.get("inputs"))?;
    let unified = json!({"inputs": inputs, "parameters": params}).to_string();
    let request = Request::from_json(&unified)
        .map_err(|e| ApiError::bad_request(format!("{e} (inputs are counted across the tensors, in order)")))?;
    let response = m.infer(request.inputs, request.parameters).await?;
    let outputs = output_tensors(&response, wanted.as_deref());
    let mut out = json!({"model_name": m.name(), "model_version": VERSION, "outputs": outputs});
    if let Some(id) = id {
        out["id"] = json!(id);
    }
    Ok(Json(out))
}

/// The `outputs` a request asks for, as (head, output name); `None` for all.
fn requested_outputs(m: &ServedModel, outputs: Option<&Value>) -> ApiResult<Option<Vec<(String, String)>>> {
    let items = match outputs {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(ApiError::bad_request(format!("\"outputs\" is {}: expected a list", kind(other)))),
    };
    let known = all_outputs(m);
    let mut wanted = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let name = item.get("name").and_then(Value::as_str).ok_or_else(|| {
            ApiError::bad_request(format!("outputs[{i}] is {}: expected an object with a \"name\"", kind(item)))
        })?;
        let (head, ..) = known.iter().find(|(_, n, ..)| n == name).ok_or_else(|| {
            let names: Vec<&str> = known.iter().map(|(_, n, ..)| n.as_str()).collect();
            ApiError::bad_request(format!("outputs[{i}]: no output '{name}': this model's are {}", names.join(", ")))
        })?;
        wanted.push((head.clone(), name.to_string()));
    }
    Ok(Some(wanted))
}

/// The tensors of `inputs` as the unified format's input objects, in order.
fn unified_inputs(inputs: Option<&Value>) -> ApiResult<Vec<Value>> {
    let tensors = match inputs {
        Some(Value::Array(t)) if !t.is_empty() => t,
        Some(Value::Array(_)) => {
            return Err(ApiError::bad_request("\"inputs\" is empty: expected at least one tensor"));
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!("\"inputs\" is {}: expected a list of tensors", kind(other))));
        }
        None => return Err(ApiError::bad_request("\"inputs\" is missing: expected a list of tensors")),
    };
    let mut out = Vec::new();
    for (t, tensor) in tensors.iter().enumerate() {
        let at = |field: &str| tensor.get(field);
        let name = at("name").and_then(Value::as_str).ok_or_else(|| {
            ApiError::bad_request(format!("inputs[{t}] has no \"name\" string: expected one of {}", INPUTS.join(", ")))
        })?;
        if !INPUTS.contains(&name) {
            return Err(ApiError::bad_request(format!(
                "inputs[{t}] is named '{name}': expected one of {}",
                INPUTS.join(", ")
            )));
        }
        match at("datatype").and_then(Value::as_str) {
            Some("BYTES") => {}
            Some(d) => {
                return Err(ApiError::bad_request(format!("input '{name}' has datatype {d}: expected BYTES")));
            }
            None => return Err(ApiError::bad_request(format!("input '{name}' has no \"datatype\": expected BYTES"))),
        }
        if let Some(p) = at("parameters").and_then(Value::as_object) {
            if p.contains_key("binary_data_size") {
                return Err(ApiError::bad_request(format!(
                    "input '{name}' uses the binary tensor data extension, which this server does not support: \
                     send the elements as base64 strings in the JSON body"
                )));
            }
            match p.get("binary_data_encoding") {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s == "base64" => {}
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "input '{name}' has binary_data_encoding {other}: expected \"base64\""
                    )));
                }
            }
        }
        let shape = at("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::bad_request(format!("input '{name}' has no \"shape\" list: expected e.g. [1]")))?;
        let mut count: u64 = 1;
        for d in shape {
            let d = d.as_u64().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "input '{name}' has shape {}: expected non-negative integers",
                    Value::Array(shape.clone())
                ))
            })?;
            count = count.saturating_mul(d);
        }
        let mut elements = Vec::new();
        flatten(
            at("data").ok_or_else(|| ApiError::bad_request(format!("input '{name}' has no \"data\"")))?,
            &mut elements,
        )
        .map_err(|seen| ApiError::bad_request(format!("input '{name}' data holds {seen}: expected strings (BYTES)")))?;
        if elements.len() as u64 != count {
            return Err(ApiError::bad_request(format!(
                "input '{name}' has shape {} ({count} elements) but its data holds {}",
                Value::Array(shape.clone()),
                elements.len()
            )));
        }
        for e in elements {
            let mut input = Map::new();
            input.insert(name.to_string(), Value::String(e.to_string()));
            out.push(Value::Object(input));
        }
    }
    Ok(out)
}

/// Strings of a possibly nested list, in row-major order; `Err` names a non-string found.
fn flatten<'v>(v: &'v Value, out: &mut Vec<&'v str>) -> Result<(), &'static str> {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => {
            for i in items {
                flatten(i, out)?;
            }
        }
        other => return Err(kind(other)),
    }
    Ok(())
}

/// The output tensors of a response, all or those asked for.
fn output_tensors(response: &Response, wanted: Option<&[(String, String)]>) -> Vec<Value> {
    let mut out = Vec::new();
    for (head, r) in &response.heads {
        let tensors = match r {
            HeadResult::Classification { label, probabilities, .. } => vec![
                (
                    head.clone(),
                    json!({"datatype": "FP32", "shape": [probabilities.len()], "data": floats(probabilities)}),
                ),
                (format!("{head}_label"), json!({"datatype": "BYTES", "shape": [1], "data": [label]})),
            ],
            HeadResult::Retrieval { fused, inputs, .. } => {
                let dim = fused.len();
                let rows: Vec<f32> = inputs.iter().flatten().copied().collect();
                vec![
                    (head.clone(), json!({"datatype": "FP32", "shape": [dim], "data": floats(fused)})),
                    (
                        format!("{head}_inputs"),
                        json!({"datatype": "FP32", "shape": [inputs.len(), dim], "data": floats(&rows)}),
                    ),
                ]
            }
            HeadResult::Generation { tokens, text, .. } => vec![
                (head.clone(), json!({"datatype": "BYTES", "shape": [1], "data": [text]})),
                (format!("{head}_tokens"), json!({"datatype": "INT32", "shape": [tokens.len()], "data": tokens})),
            ],
        };
        for (name, mut t) in tensors {
            if wanted.is_none_or(|w| w.iter().any(|(_, n)| *n == name)) {
                t["name"] = json!(name);
                out.push(t);
            }
        }
    }
    out
}
