//! Named in-memory retrieval indexes: `POST /v1/index/{name}` embeds each input of a request
//! (alone, so an embedding never depends on its neighbours) with the model's retrieval head
//! and adds it under a key; `GET /v1/index/{name}` tells what an index holds;
//! `GET /v1/search?index=NAME&text=…&k=5` embeds the text and returns the most similar
//! entries of other modalities (text finds images, audio, video); `POST /v1/search?index=NAME&k=5`
//! does the same for the one input of a request body (an image finds texts, …).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use omnifuse_model::config::HeadKind;
use omnifuse_model::index::Index;
use omnifuse_model::input::{Modality, RawInput};
use omnifuse_model::output::HeadResult;
use omnifuse_model::request::{Parameters, Request};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::ServedModel;
use crate::error::{ApiError, ApiResult};
use crate::limits::{self, kind};
use crate::state::AppState;

/// Longest index name.
const MAX_NAME: usize = 128;

/// The named indexes.
#[derive(Default)]
pub struct Indexes {
    by_name: Mutex<HashMap<String, Index>>,
}

impl Indexes {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Index>> {
        // Updates are single map or vector operations: a poisoned lock is still consistent.
        self.by_name.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The model's first retrieval head: its name and width.
fn retrieval_head(model: &ServedModel) -> ApiResult<(String, usize)> {
    model
        .model()
        .config()
        .heads
        .iter()
        .find_map(|h| match h.kind {
            HeadKind::Retrieval { dim } => Some((h.name.clone(), dim)),
            _ => None,
        })
        .ok_or_else(|| ApiError::unprocessable(format!("model '{}' has no retrieval head", model.name())))
}

/// Each input's embedding and modality, every input run as its own request.
async fn embed_each(model: &ServedModel, head: &str, inputs: Vec<RawInput>) -> ApiResult<Vec<(Modality, Vec<f32>)>> {
    let params = Parameters { tasks: vec![head.to_string()], ..Parameters::default() };
    let mut pending = Vec::with_capacity(inputs.len());
    for input in inputs {
        pending.push(model.submit(vec![input], params.clone())?);
    }
    let mut out = Vec::with_capacity(pending.len());
    for (i, p) in pending.into_iter().enumerate() {
        let r = p.wait().await.map_err(|e| ApiError::new(e.status, format!("input {i}: {}", e.message)))?;
        let modality = r.inputs.first().map(|s| s.modality);
        match (modality, r.heads.get(head)) {
            (Some(m), Some(HeadResult::Retrieval { inputs, .. })) if !inputs.is_empty() => {
                out.push((m, inputs[0].clone()))
            }
            _ => return Err(ApiError::internal(format!("input {i}: head '{head}' gave no embedding"))),
        }
    }
    Ok(out)
}

fn check_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "index name '{name}': expected 1 to {MAX_NAME} characters of A-Z, a-z, 0-9, '-', '_' or '.'"
        )))
    }
}

/// `POST /v1/index/{name}`: body `{"inputs":[…], "keys":["…", …]}` (keys optional; a text's
/// key defaults to the text, another input's to `<modality>-<n>`). Adds all or none.
pub async fn add(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    check_name(&name)?;
    let bytes = limits::body(body, state.config.max_body_bytes)?;
    let mut top = limits::json_object(&bytes)?;
    let keys = match top.remove("keys") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| ApiError::bad_request(format!("keys[{i}] is {}: expected a string", kind(v))))
                })
                .collect::<ApiResult<Vec<String>>>()?,
        ),
        Some(other) => {
            return Err(ApiError::bad_request(format!("\"keys\" is {}: expected a list of strings", kind(&other))));
        }
    };
    let request =
        Request::from_json(&Value::Object(top).to_string()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(k) = &keys
        && k.len() != request.inputs.len()
    {
        return Err(ApiError::bad_request(format!(
            "{} keys for {} inputs: expected one key per input",
            k.len(),
            request.inputs.len()
        )));
    }
    let texts: Vec<Option<String>> = request
        .inputs
        .iter()
        .map(|i| match i {
            RawInput::Text(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    let model = state.default_model()?;
    let (head, dim) = retrieval_head(&model)?;
    room_for(&state, &state.indexes.lock(), &name)?;
    let embedded = embed_each(&model, &head, request.inputs).await?;
    let mut indexes = state.indexes.lock();
    room_for(&state, &indexes, &name)?;
    let limit = state.config.max_index_entries;
    let model_name = model.model().config().model.name.clone();
    let ix = indexes.entry(name.clone()).or_insert_with(|| Index::new(&model_name, &head, dim));
    if ix.entries.len() + embedded.len() > limit {
        return Err(ApiError::new(
            axum::http::StatusCode::INSUFFICIENT_STORAGE,
            format!(
                "index '{name}' holds {} entries; adding {} would pass the limit of {limit}",
                ix.entries.len(),
                embedded.len()
            ),
        ));
    }
    let start = ix.entries.len();
    for (i, (modality, embedding)) in embedded.into_iter().enumerate() {
        let key = match (&keys, &texts[i]) {
            (Some(k), _) => k[i].clone(),
            (None, Some(t)) => t.clone(),
            (None, None) => format!("{}-{}", modality.name(), start + i),
        };
        ix.add(key, modality, embedding).map_err(|e| ApiError::internal(e.to_string()))?;
    }
    Ok(Json(json!({"index": name, "added": ix.entries.len() - start, "entries": ix.entries.len()})))
}

/// Error unless index `name` exists or one more may be made.
fn room_for(state: &AppState, indexes: &HashMap<String, Index>, name: &str) -> ApiResult<()> {
    let limit = state.config.max_indexes;
    if indexes.contains_key(name) || indexes.len() < limit {
        return Ok(());
    }
    Err(ApiError::new(
        axum::http::StatusCode::INSUFFICIENT_STORAGE,
        format!("{} indexes exist, the limit (max_indexes {limit}): add to an existing one", indexes.len()),
    ))
}

/// `GET /v1/index/{name}`: the entries' keys and modalities.
pub async fn show(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let indexes = state.indexes.lock();
    let ix = indexes.get(&name).ok_or_else(|| unknown(&name))?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &ix.entries {
        *counts.entry(e.modality.as_str()).or_default() += 1;
    }
    let entries: Vec<Value> = ix.entries.iter().map(|e| json!({"key": e.key, "modality": e.modality})).collect();
    Ok(Json(json!({
        "index": name, "model": ix.model, "head": ix.head, "dim": ix.dim,
        "counts": counts, "entries": entries,
    })))
}

fn unknown(name: &str) -> ApiError {
    ApiError::not_found(format!("no index '{name}': add entries with POST /v1/index/{name} first"))
}

/// Query of `GET /v1/search`.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    /// Index name.
    index: String,
    /// The query text.
    text: String,
    /// Most matches (default 5).
    k: Option<usize>,
}

/// `GET /v1/search?index=NAME&text=…&k=5`.
pub async fn search(
    State(state): State<AppState>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(format!("bad query ({}): expected ?index=NAME&text=…&k=N", e.body_text()))
    })?;
    let k = q.k.unwrap_or(5);
    if state.indexes.lock().get(&q.index).is_none() {
        return Err(unknown(&q.index));
    }
    let model = state.default_model()?;
    let (head, _) = retrieval_head(&model)?;
    let mut embedded = embed_each(&model, &head, vec![RawInput::Text(q.text.clone())]).await?;
    let (modality, embedding) = embedded.pop().ok_or_else(|| ApiError::internal("the query gave no embedding"))?;
    let matches = search_index(&state, &q.index, &embedding, modality, k)?;
    Ok(Json(json!({"index": q.index, "query": q.text, "matches": matches})))
}

/// The `k` entries of index `name` most similar to `embedding`, leaving out `modality`.
fn search_index(
    state: &AppState,
    name: &str,
    embedding: &[f32],
    modality: Modality,
    k: usize,
) -> ApiResult<Vec<omnifuse_model::index::Match>> {
    let indexes = state.indexes.lock();
    let ix = indexes.get(name).ok_or_else(|| unknown(name))?;
    Ok(ix.search(embedding, Some(modality), k))
}

/// Query of `POST /v1/search`.
#[derive(Debug, Deserialize)]
pub struct SearchByQuery {
    /// Index name.
    index: String,
    /// Most matches (default 5).
    k: Option<usize>,
}

/// `POST /v1/search?index=NAME&k=5` with a body holding one input in the request format.
pub async fn search_by_input(
    State(state): State<AppState>,
    query: Result<Query<SearchByQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(format!("bad query ({}): expected ?index=NAME&k=N", e.body_text())))?;
    let bytes = limits::body(body, state.config.max_body_bytes)?;
    let request = crate::unified::parse_request(&bytes)?;
    if request.inputs.len() != 1 {
        return Err(ApiError::bad_request(format!(
            "{} inputs: a search takes exactly one input",
            request.inputs.len()
        )));
    }
    if state.indexes.lock().get(&q.index).is_none() {
        return Err(unknown(&q.index));
    }
    let model = state.default_model()?;
    let (head, _) = retrieval_head(&model)?;
    let mut embedded = embed_each(&model, &head, request.inputs).await?;
    let (modality, embedding) = embedded.pop().ok_or_else(|| ApiError::internal("the query gave no embedding"))?;
    let matches = search_index(&state, &q.index, &embedding, modality, q.k.unwrap_or(5))?;
    Ok(Json(json!({"index": q.index, "modality": modality.name(), "matches": matches})))
}
