//! Introspection: the library's version and ABI version, the backends compiled in, the
//! devices found, and an engine's heads with the shapes of their outputs.

use std::ffi::{CString, c_char};
use std::sync::OnceLock;

use omnifuse_model::Model;
use omnifuse_model::config::HeadKind;
use omnifuse_registry::{OpenOptions, backends, probe};
use serde_json::{Value, json};

use crate::engine::{engine_ref, omnifuse_engine};
use crate::handle;
use crate::result::{OMNIFUSE_HEAD_CLASSIFICATION, OMNIFUSE_HEAD_GENERATION, OMNIFUSE_HEAD_RETRIEVAL};
use crate::status::{Failure, OMNIFUSE_STATUS_INTERNAL, Outcome, guard, omnifuse_status};

/// ABI major version: changes only when an existing declaration changes incompatibly; it is
/// the number in the shared library's soname (`libomnifuse.so.1`).
pub const OMNIFUSE_ABI_MAJOR: u32 = 1;
/// ABI minor version: grows when declarations are added (functions, status codes, trailing
/// option fields); a program built against minor N runs with any library of the same
/// major and minor ≥ N.
pub const OMNIFUSE_ABI_MINOR: u32 = 0;

static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library's version (`"0.1.0"`): a static NUL-terminated string, never freed.
#[unsafe(no_mangle)]
pub extern "C" fn omnifuse_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// The ABI version of the library as built (compare with `OMNIFUSE_ABI_MAJOR` and
/// `OMNIFUSE_ABI_MINOR` of the header you compiled against). Either pointer may be NULL.
///
/// # Safety
/// `major` and `minor` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_abi_version(major: *mut u32, minor: *mut u32) -> omnifuse_status {
    guard(|| {
        if !major.is_null() {
            // SAFETY: non-NULL and writable by our contract.
            unsafe { major.write(OMNIFUSE_ABI_MAJOR) };
        }
        if !minor.is_null() {
            // SAFETY: non-NULL and writable by our contract.
            unsafe { minor.write(OMNIFUSE_ABI_MINOR) };
        }
        Ok(())
    })
}

fn to_cstring(v: &Value) -> Outcome<CString> {
    CString::new(v.to_string())
        .map_err(|e| Failure::new(OMNIFUSE_STATUS_INTERNAL, format!("JSON with a NUL byte: {e}")))
}

/// The backend families omnifuse knows and whether this build has each, as JSON:
/// `[{"family":"cpu","compiled":true,"note":"…"},…]`. `*json` receives a static string
/// (valid for the life of the process, never freed).
///
/// # Safety
/// `json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_backends_json(json: *mut *const c_char) -> omnifuse_status {
    static TEXT: OnceLock<CString> = OnceLock::new();
    guard(|| {
        let text = match TEXT.get() {
            Some(t) => t,
            None => {
                let list: Vec<Value> = backends()
                    .iter()
                    .map(|b| json!({"family": b.family, "compiled": b.compiled, "note": b.note}))
                    .collect();
                let made = to_cstring(&Value::Array(list))?;
                TEXT.get_or_init(|| made)
            }
        };
        // SAFETY: NULL or writable by our contract.
        unsafe { handle::write_out(json, "json", text.as_ptr()) }
    })
}

/// The devices this build can see, probed now, as JSON:
/// `[{"name":"cpu","available":true,"device_name":"…","kind":"cpu","compute_units":…,"memory_bytes":…,"arch":"…"},{"name":"opencl","available":false,"reason":"…"},…]`.
/// `*json` receives a new string the caller frees with `omnifuse_string_free`.
///
/// # Safety
/// `json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_devices_json(json: *mut *mut c_char) -> omnifuse_status {
    guard(|| {
        if json.is_null() {
            return Err(Failure::invalid("json is NULL: expected a pointer to write the string to"));
        }
        let list: Vec<Value> = probe(OpenOptions::default())
            .into_iter()
            .map(|d| match d.info {
                Ok(i) => json!({
                    "name": d.name, "available": true, "device_name": i.device_name, "kind": i.kind.name(),
                    "compute_units": i.compute_units, "memory_bytes": i.memory_bytes, "arch": i.arch,
                }),
                Err(reason) => json!({"name": d.name, "available": false, "reason": reason}),
            })
            .collect();
        let text = to_cstring(&Value::Array(list))?;
        // SAFETY: non-NULL and writable by our contract.
        unsafe { json.write(text.into_raw()) };
        Ok(())
    })
}

/// Free a string this library allocated for the caller (`omnifuse_devices_json`). NULL is
/// accepted. Never pass other strings (static ones, or those owned by a handle).
///
/// # Safety
/// `s` is NULL or a string from a function documented to need this call, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_string_free(s: *mut c_char) -> omnifuse_status {
    guard(|| {
        if !s.is_null() {
            // SAFETY: by our contract `s` came from `CString::into_raw` and is freed once.
            drop(unsafe { CString::from_raw(s) });
        }
        Ok(())
    })
}

/// The heads of `model` and their output shapes as JSON.
pub fn heads_json(model: &Model) -> Outcome<CString> {
    let heads: Vec<Value> = model
        .config()
        .heads
        .iter()
        .map(|h| {
            let (kind, outputs) = match &h.kind {
                HeadKind::Classification { labels, .. } => (
                    "classification",
                    json!({"probabilities": [labels.len()], "labels": labels}),
                ),
                HeadKind::Retrieval { dim } => ("retrieval", json!({"fused": [dim], "inputs": ["n_inputs", dim]})),
                HeadKind::Generation { max_tokens, .. } => (
                    "generation",
                    json!({"tokens": ["<= max_tokens"], "logprobs": ["<= max_tokens"], "default_max_tokens": max_tokens}),
                ),
            };
            json!({"name": h.name, "kind": kind, "outputs": outputs})
        })
        .collect();
    let c = model.config();
    to_cstring(&json!({
        "model": c.model.name, "width": c.model.width, "parameters": model.parameters(),
        "backend": model.backend_name(), "heads": heads,
    }))
}

/// The engine's model and heads as JSON:
/// `{"model","width","parameters","backend","heads":[{"name","kind","outputs":{…shapes…}}]}`
/// — a classifier's `probabilities` are `[labels]`, a retrieval head's `fused` is `[dim]`
/// and `inputs` `["n_inputs", dim]`, a generation head's `tokens` and `logprobs` have up to
/// `max_tokens` elements. `*json` is owned by the engine (valid until it is destroyed);
/// `*len` (may be NULL) is its length.
///
/// # Safety
/// `engine` is a live engine; `json` and `len` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_engine_info_json(
    engine: *const omnifuse_engine,
    json: *mut *const c_char,
    len: *mut usize,
) -> omnifuse_status {
    guard(|| {
        // SAFETY: a live engine by our contract.
        let e = unsafe { engine_ref(engine)? };
        // SAFETY: NULL or writable by our contract.
        unsafe { handle::write_out(json, "json", e.heads_json.as_ptr())? };
        if !len.is_null() {
            // SAFETY: non-NULL and writable by our contract.
            unsafe { len.write(e.heads_json.as_bytes().len()) };
        }
        Ok(())
    })
}

/// Number of heads of the engine's model, written to `*count`.
///
/// # Safety
/// `engine` is a live engine; `count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_engine_head_count(
    engine: *const omnifuse_engine,
    count: *mut usize,
) -> omnifuse_status {
    guard(|| {
        // SAFETY: a live engine by our contract.
        let e = unsafe { engine_ref(engine)? };
        // SAFETY: NULL or writable by our contract.
        unsafe { handle::write_out(count, "count", e.model.config().heads.len()) }
    })
}

/// Head `index` (config order) of the engine's model: its name (owned by the engine, valid
/// until it is destroyed), kind (`OMNIFUSE_HEAD_*`) and the length of its f32 output
/// (`omnifuse_result_head_f32`): labels for a classifier, the embedding width for retrieval,
/// the default most tokens for generation. Any out-pointer may be NULL.
///
/// # Safety
/// `engine` is a live engine; the out-pointers are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_engine_head_info(
    engine: *const omnifuse_engine,
    index: usize,
    name: *mut *const c_char,
    kind: *mut i32,
    output_len: *mut usize,
) -> omnifuse_status {
    guard(|| {
        // SAFETY: a live engine by our contract.
        let e = unsafe { engine_ref(engine)? };
        let heads = &e.model.config().heads;
        let (h, n) = heads.get(index).zip(e.head_names.get(index)).ok_or_else(|| {
            Failure::not_found(format!("no head at index {index}: the model has {} heads", heads.len()))
        })?;
        let (k, len) = match &h.kind {
            HeadKind::Classification { labels, .. } => (OMNIFUSE_HEAD_CLASSIFICATION, labels.len()),
            HeadKind::Retrieval { dim } => (OMNIFUSE_HEAD_RETRIEVAL, *dim),
            HeadKind::Generation { max_tokens, .. } => (OMNIFUSE_HEAD_GENERATION, *max_tokens),
        };
        if !name.is_null() {
            // SAFETY: non-NULL and writable by our contract.
            unsafe { name.write(n.as_ptr()) };
        }
        if !output_len.is_null() {
            // SAFETY: non-NULL and writable by our contract.
            unsafe { output_len.write(len) };
        }
        if !kind.is_null() {
            // SAFETY: non-NULL and writable by our contract.
            unsafe { kind.write(k) };
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_soname_carries_the_abi_major() {
        assert_eq!(env!("OMNIFUSE_SONAME_MAJOR").parse::<u32>().unwrap(), OMNIFUSE_ABI_MAJOR);
    }

    #[test]
    fn the_version_is_a_c_string() {
        // SAFETY: `omnifuse_version` returns a static NUL-terminated string.
        let v = unsafe { std::ffi::CStr::from_ptr(omnifuse_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
