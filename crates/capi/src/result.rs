//! Results: one request's answer — the same JSON `omnifuse run --json` prints, and typed
//! access to each head's output (probabilities, embeddings, log-probabilities, generated
//! tokens and text). Every pointer a result hands out is owned by the result and stays
//! valid until `omnifuse_result_destroy`.

use std::ffi::{CString, c_char};
use std::sync::OnceLock;

use omnifuse_model::output::{HeadResult, Response};

use crate::handle::{self, handle_type};
use crate::status::{Failure, OMNIFUSE_STATUS_INTERNAL, Outcome, guard, omnifuse_status};
use crate::text::cstr;

/// Head kind: a classifier (its f32 output: label probabilities; its text: the best label).
pub const OMNIFUSE_HEAD_CLASSIFICATION: i32 = 0;
/// Head kind: retrieval (its f32 output: the request's L2-normalised embedding; per input:
/// `omnifuse_result_head_input_f32`).
pub const OMNIFUSE_HEAD_RETRIEVAL: i32 = 1;
/// Head kind: generation (its f32 output: each token's log-probability; its tokens and text:
/// what it generated).
pub const OMNIFUSE_HEAD_GENERATION: i32 = 2;

/// One request's answer. Owned by the caller; free it with `omnifuse_result_destroy`.
/// Read-only: may be read from several threads at once.
#[allow(non_camel_case_types)]
pub struct omnifuse_result {
    magic: u64,
    response: Response,
    names: Vec<CString>,
    texts: Vec<CString>,
    json: OnceLock<Result<CString, String>>,
}
handle_type!(omnifuse_result, 0x6f6d_6e69_7265_7331, "omnifuse_result");

impl omnifuse_result {
    /// A result holding `response`.
    pub fn new(response: Response) -> Self {
        let c = |s: &str| CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default();
        let names = response.heads.keys().map(|k| c(k)).collect();
        let texts = response
            .heads
            .values()
            .map(|h| match h {
                HeadResult::Classification { label, .. } => c(label),
                HeadResult::Generation { text, .. } => c(text),
                HeadResult::Retrieval { .. } => CString::default(),
            })
            .collect();
        omnifuse_result {
            magic: <omnifuse_result as handle::Handle>::MAGIC,
            response,
            names,
            texts,
            json: OnceLock::new(),
        }
    }

    /// The response.
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// The JSON text, made on first use.
    fn json(&self) -> Outcome<&CString> {
        self.json
            .get_or_init(|| {
                let text = serde_json::to_string_pretty(&self.response).map_err(|e| e.to_string())?;
                CString::new(text).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| Failure::new(OMNIFUSE_STATUS_INTERNAL, format!("the result cannot be written as JSON: {e}")))
    }

    /// The index of head `name`.
    fn head_index(&self, name: &str) -> Outcome<usize> {
        self.response.heads.keys().position(|k| k == name).ok_or_else(|| {
            let names: Vec<&str> = self.response.heads.keys().map(String::as_str).collect();
            Failure::not_found(format!("no head \"{name}\" in this result: it has {}", names.join(", ")))
        })
    }

    fn head(&self, i: usize) -> Outcome<&HeadResult> {
        self.response.heads.values().nth(i).ok_or_else(|| Failure::not_found(format!("no head at index {i}")))
    }
}

/// Borrow the result behind `result`.
///
/// # Safety
/// `result` is NULL or a pointer this library returned.
unsafe fn result_ref<'a>(result: *const omnifuse_result) -> Outcome<&'a omnifuse_result> {
    // SAFETY: the same contract as ours.
    unsafe { handle::borrow(result, "result") }
}

/// Write a pointer and a length through two out-pointers.
///
/// # Safety
/// `ptr_out` and `len_out` are NULL or writable; `len_out` may be NULL when not wanted.
unsafe fn write_span<T>(ptr_out: *mut *const T, len_out: *mut usize, ptr: *const T, len: usize) -> Outcome {
    // SAFETY: NULL or writable by our contract.
    unsafe { handle::write_out(ptr_out, "data", ptr)? };
    if !len_out.is_null() {
        // SAFETY: non-NULL and writable by our contract.
        unsafe { len_out.write(len) };
    }
    Ok(())
}

/// The result as JSON — exactly what `omnifuse run --json` prints for the same request:
/// `{"model","backend","inputs":[{"modality","tokens"}],"heads":{name:{"kind",…}},"timing_ms":{…}}`.
/// `*json` receives a NUL-terminated string owned by the result (valid until it is
/// destroyed); `*len` (may be NULL) its length without the NUL.
///
/// # Safety
/// `result` is a live result; `json` is NULL or writable; `len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_result_json(
    result: *const omnifuse_result,
    json: *mut *const c_char,
    len: *mut usize,
) -> omnifuse_status {
    guard(|| {
        // SAFETY: a live result by our contract.
        let r = unsafe { result_ref(result)? };
        let text = r.json()?;
        // SAFETY: NULL or writable by our contract.
        unsafe { write_span(json, len, text.as_ptr(), text.as_bytes().len()) }
    })
}

/// Number of heads that answered, written to `*count`.
///
/// # Safety
/// `result` is a live result; `count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_result_head_count(
    result: *const omnifuse_result,
    count: *mut usize,
) -> omnifuse_status {
    guard(|| {
        // SAFETY: a live result by our contract.
        let r = unsafe { result_ref(result)? };
        // SAFETY: NULL or writable by our contract.
        unsafe { handle::write_out(count, "count", r.names.len()) }
    })
}

/// Name (owned by the result) and kind (`OMNIFUSE_HEAD_*`; `kind` may be NULL) of head
/// `index` (heads are in name order).
///
/// # Safety
/// `result` is a live result; `name` is NULL or writable; `kind` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_result_head_name(
    result: *const omnifuse_result,
    index: usize,
    name: *mut *const c_char,
    kind: *mut i32,
) -> omnifuse_status {
    guard(|| {
        // SAFETY: a live result by our contract.
        let r = unsafe { result_ref(result)? };
        let head = r.head(index)?;
        let n = r.names.get(index).ok_or_else(|| Failure::not_found(format!("no head at index {index}")))?;
        // SAFETY: NULL or writable by our contract.
        unsafe { handle::write_out(name, "name", n.as_ptr())? };
        if !kind.is_null() {
            let k = match head {
                HeadResult::Classification { .. } => OMNIFUSE_HEAD_CLASSIFICATION,
                HeadResult::Retrieval { .. } => OMNIFUSE_HEAD_RETRIEVAL,
                HeadResult::Generation { .. } => OMNIFUSE_HEAD_GENERATION,
            };
            // SAFETY: non-NULL and writable by our contract.
            unsafe { kind.write(k) };
        }
        Ok(())
    })
}

/// The f32 vector of head `name`: a classifier's label probabilities, a retrieval head's
/// embedding of the whole request, or a generation head's per-token log-probabilities.
/// `*data` points into the result (valid until it is destroyed); `*len` (may be NULL) is
/// its element count.
///
/// # Safety
/// `result` is a live result; `name` is NUL-terminated; `data` and `len` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_result_head_f32(
    result: *const omnifuse_result,
    name: *const c_char,
    data: *mut *const f32,
    len: *mut usize,
) -> omnifuse_status {
    guard(|| {
        // SAFETY: a live result and a NUL-terminated name by our contract.
        let (r, name) = unsafe { (result_ref(result)?, cstr(name, "name")?) };
        let v = match r.head(r.head_index(name)?)? {
            HeadResult::Classification { probabilities, .. } => probabilities,
            HeadResult::Retrieval { fused, .. } => fused,
            HeadResult::Generation { logprobs, .. } => logprobs,
        };
        // SAFETY: NULL or writable by our contract.
        unsafe { write_span(data, len, v.as_ptr(), v.len()) }
    })
}

/// The retrieval embedding of input `input` (request order) from retrieval head `name`;
/// `OMNIFUSE_STATUS_NOT_FOUND` for another head kind or an input out of range. Owned by the
/// result, as `omnifuse_result_head_f32`.
///
/// # Safety
/// As `omnifuse_result_head_f32`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_result_head_input_f32(
    result: *const omnifuse_result,
    name: *const c_char,
    input: usize,
    data: *mut *const f32,
    len: *mut usize,
) -> omnifuse_status {
    guard(|| {
        // SAFETY: a live result and a NUL-terminated name by our contract.
        let (r, name) = unsafe { (result_ref(result)?, cstr(name, "name")?) };
        let HeadResult::Retrieval { inputs, .. } = r.head(r.head_index(name)?)? else {
            return Err(Failure::not_found(format!(
                "head \"{name}\" is not a retrieval head: it has no per-input embeddings"
            )));
        };
        let v = inputs.get(input).ok_or_else(|| {
            Failure::not_found(format!("input {input} is out of range: the request has {} inputs", inputs.len()))
        })?;
        // SAFETY: NULL or writable by our contract.
        unsafe { write_span(data, len, v.as_ptr(), v.len()) }
    })
}

/// The token ids a generation head produced; `OMNIFUSE_STATUS_NOT_FOUND` for another kind.
/// Owned by the result, as `omnifuse_result_head_f32`.
///
/// # Safety
/// As `omnifuse_result_head_f32`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_result_head_tokens(
    result: *const omnifuse_result,
    name: *const c_char,
    data: *mut *const i32,
    len: *mut usize,
) -> omnifuse_status {
    guard(|| {
        // SAFETY: a live result and a NUL-terminated name by our contract.
        let (r, name) = unsafe { (result_ref(result)?, cstr(name, "name")?) };
        let HeadResult::Generation { tokens, .. } = r.head(r.head_index(name)?)? else {
            return Err(Failure::not_found(format!("head \"{name}\" is not a generation head: it has no tokens")));
        };
        // SAFETY: NULL or writable by our contract.
        unsafe { write_span(data, len, tokens.as_ptr(), tokens.len()) }
    })
}

/// The text of head `name`: a classifier's best label or a generation head's text (invalid
/// UTF-8 and NUL bytes replaced by U+FFFD); `OMNIFUSE_STATUS_NOT_FOUND` for a retrieval head.
/// NUL-terminated, owned by the result; `*len` (may be NULL) is its length in bytes.
///
/// # Safety
/// As `omnifuse_result_head_f32`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_result_head_text(
    result: *const omnifuse_result,
    name: *const c_char,
    text: *mut *const c_char,
    len: *mut usize,
) -> omnifuse_status {
    guard(|| {
        // SAFETY: a live result and a NUL-terminated name by our contract.
        let (r, name) = unsafe { (result_ref(result)?, cstr(name, "name")?) };
        let i = r.head_index(name)?;
        if matches!(r.head(i)?, HeadResult::Retrieval { .. }) {
            return Err(Failure::not_found(format!("head \"{name}\" is a retrieval head: it has no text")));
        }
        let t = r.texts.get(i).ok_or_else(|| Failure::not_found(format!("no head at index {i}")))?;
        // SAFETY: NULL or writable by our contract.
        unsafe { write_span(text, len, t.as_ptr(), t.as_bytes().len()) }
    })
}

/// Free a result (NULL is accepted); every pointer it handed out dangles afterwards.
///
/// # Safety
/// `result` is NULL or a live result no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_result_destroy(result: *mut omnifuse_result) -> omnifuse_status {
    guard(|| {
        // SAFETY: NULL or a live result, not used again, by our contract.
        unsafe { handle::destroy(result, "result")? };
        Ok(())
    })
}
