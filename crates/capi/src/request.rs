//! Requests built from C: inputs added one by one (text, encoded files, typed pixel and PCM
//! buffers) or parsed from the JSON request format, plus their parameters. Every input is
//! copied on the call that adds it, so the caller's buffers may be freed right after.

use std::ffi::c_char;
use std::sync::Arc;

use omnifuse_model::input::{FileKind, Modality, PixelData, RawInput};
use omnifuse_model::request::{Parameters, Request};

use crate::handle::{self, handle_type};
use crate::status::{Failure, OMNIFUSE_STATUS_BAD_INPUT, Outcome, guard, omnifuse_status};
use crate::text::{cstr, slice, utf8};

/// A request being built: inputs in order and parameters. Owned by the caller; free it with
/// `omnifuse_request_destroy`. A request may be submitted several times and changed between
/// submissions (a submitted request keeps what it held when it was submitted). Not to be
/// changed from two threads at once.
#[allow(non_camel_case_types)]
pub struct omnifuse_request {
    magic: u64,
    body: Arc<Body>,
}
handle_type!(omnifuse_request, 0x6f6d_6e69_7265_7131, "omnifuse_request");

/// What a request holds.
#[derive(Clone, Debug, Default)]
pub struct Body {
    /// The inputs, in order.
    pub inputs: Vec<RawInput>,
    /// The parameters.
    pub params: Parameters,
}

impl omnifuse_request {
    fn new(body: Body) -> Self {
        omnifuse_request { magic: <omnifuse_request as handle::Handle>::MAGIC, body: Arc::new(body) }
    }

    /// A shared snapshot of the request, as a submission keeps it.
    pub fn snapshot(&self) -> Arc<Body> {
        self.body.clone()
    }

    fn push(&mut self, input: RawInput) {
        Arc::make_mut(&mut self.body).inputs.push(input);
    }
}

fn with_request(req: *mut omnifuse_request, f: impl FnOnce(&mut omnifuse_request) -> Outcome) -> omnifuse_status {
    guard(|| {
        // SAFETY: `req` is NULL or a request handle used by one thread at a time (the C contract).
        let r = unsafe { handle::borrow_mut(req, "req")? };
        f(r)
    })
}

/// A new, empty request, written to `*out`. Free it with `omnifuse_request_destroy`.
///
/// # Safety
/// `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_request_create(out: *mut *mut omnifuse_request) -> omnifuse_status {
    guard(|| {
        // SAFETY: `out` is NULL or writable by our contract.
        unsafe { handle::hand_out(out, "out", omnifuse_request::new(Body::default())) }
    })
}

/// A request parsed from the JSON request format
/// `{"inputs":[{"text":"…"},{"image":"<base64>"},{"audio":"<base64 wav>"},{"video":"<base64 y4m>"},{"frames":["<base64>",…]}],"parameters":{"task_type":…,"max_tokens":…}}`,
/// written to `*out`. `json` is NUL-terminated UTF-8, read only during the call.
///
/// # Safety
/// `json` is NULL or NUL-terminated; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_request_from_json(
    json: *const c_char,
    out: *mut *mut omnifuse_request,
) -> omnifuse_status {
    guard(|| {
        // SAFETY: NULL or NUL-terminated by our contract.
        let text = unsafe { cstr(json, "json")? };
        let r = Request::from_json(text)?;
        let body = Body { inputs: r.inputs, params: r.parameters };
        // SAFETY: `out` is NULL or writable by our contract.
        unsafe { handle::hand_out(out, "out", omnifuse_request::new(body)) }
    })
}

/// Append a text input: `len` bytes of UTF-8 at `utf8` (no NUL needed; NUL bytes inside are
/// kept as text).
///
/// # Safety
/// `req` is a live request; `text` is readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_request_add_text(
    req: *mut omnifuse_request,
    text: *const c_char,
    len: usize,
) -> omnifuse_status {
    with_request(req, |r| {
        // SAFETY: readable for `len` bytes by our contract.
        let s = unsafe { utf8(text, len, "text")? };
        r.push(RawInput::Text(s.to_string()));
        Ok(())
    })
}

/// Append the bytes of a file of `modality`, refusing bytes of another kind.
fn add_file(r: &mut omnifuse_request, bytes: &[u8], want: Modality, what: &str) -> Outcome {
    let index = r.body.inputs.len();
    match FileKind::sniff(bytes) {
        Some(k) if k.modality() == want => {
            r.push(RawInput::Bytes(bytes.to_vec()));
            Ok(())
        }
        Some(k) => Err(Failure::new(
            OMNIFUSE_STATUS_BAD_INPUT,
            format!("input {index}: {what} bytes are {} ({}), a file of {}", k.name(), k.modality(), want),
        )),
        None => {
            let shown: Vec<String> = bytes.iter().take(12).map(|b| format!("{b:02X}")).collect();
            Err(Failure::new(
                OMNIFUSE_STATUS_BAD_INPUT,
                format!(
                    "input {index}: {what} bytes start {} ({} bytes): not a {} file omnifuse reads",
                    if shown.is_empty() { "nowhere (empty)".to_string() } else { shown.join(" ") },
                    bytes.len(),
                    match want {
                        Modality::Image => "PNG or JPEG",
                        Modality::Audio => "RIFF/WAVE",
                        _ => "YUV4MPEG2",
                    }
                ),
            ))
        }
    }
}

/// Append an image input: the `len` bytes of a PNG or JPEG file (decoded at inference).
///
/// # Safety
/// `req` is a live request; `data` is readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_request_add_image(
    req: *mut omnifuse_request,
    data: *const u8,
    len: usize,
) -> omnifuse_status {
    with_request(req, |r| {
        // SAFETY: readable for `len` bytes by our contract.
        let bytes = unsafe { slice(data, len, "data")? };
        add_file(r, bytes, Modality::Image, "image")
    })
}

/// Append an audio input: the `len` bytes of a WAV (RIFF/WAVE) file.
///
/// # Safety
/// `req` is a live request; `data` is readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_request_add_audio(
    req: *mut omnifuse_request,
    data: *const u8,
    len: usize,
) -> omnifuse_status {
    with_request(req, |r| {
        // SAFETY: readable for `len` bytes by our contract.
        let bytes = unsafe { slice(data, len, "data")? };
        add_file(r, bytes, Modality::Audio, "audio")
    })
}

/// Append a video input: the `len` bytes of a YUV4MPEG2 (Y4M) file.
///
/// # Safety
/// `req` is a live request; `data` is readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_request_add_video(
    req: *mut omnifuse_request,
    data: *const u8,
    len: usize,
) -> omnifuse_status {
    with_request(req, |r| {
        // SAFETY: readable for `len` bytes by our contract.
        let bytes = unsafe { slice(data, len, "data")? };
        add_file(r, bytes, Modality::Video, "video")
    })
}

fn pixel_count(height: usize, width: usize) -> Outcome<usize> {
    height
        .checked_mul(width)
        .and_then(|n| n.checked_mul(3))
        .filter(|&n| n > 0)
        .ok_or_else(|| Failure::invalid(format!("a {height}×{width} RGB image: expected both sides at least 1")))
}

/// Append an image input from decoded pixels: `height × width × 3` RGB samples, row-major,
/// channels last, 8 bits each.
///
/// # Safety
/// `req` is a live request; `rgb` is readable for `height·width·3` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_request_add_pixels_u8(
    req: *mut omnifuse_request,
    rgb: *const u8,
    height: usize,
    width: usize,
) -> omnifuse_status {
    with_request(req, |r| {
        let n = pixel_count(height, width)?;
        // SAFETY: readable for `n` bytes by our contract.
        let data = unsafe { slice(rgb, n, "rgb")? };
        r.push(RawInput::Pixels { height, width, data: PixelData::U8(data.to_vec()) });
        Ok(())
    })
}

/// Append an image input from float pixels on the 0..=255 scale: `height × width × 3` RGB
/// samples, row-major, channels last.
///
/// # Safety
/// `req` is a live request; `rgb` is readable for `height·width·3` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_request_add_pixels_f32(
    req: *mut omnifuse_request,
    rgb: *const f32,
    height: usize,
    width: usize,
) -> omnifuse_status {
    with_request(req, |r| {
        let n = pixel_count(height, width)?;
        // SAFETY: readable for `n` floats by our contract.
        let data = unsafe { slice(rgb, n, "rgb")? };
        r.push(RawInput::Pixels { height, width, data: PixelData::F32(data.to_vec()) });
        Ok(())
    })
}

/// Append an audio input from mono PCM samples in `[-1, 1]` at `sample_rate` Hz (resampled
/// to the model's rate at inference).
///
/// # Safety
/// `req` is a live request; `samples` is readable for `count` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_request_add_pcm_f32(
    req: *mut omnifuse_request,
    samples: *const f32,
    count: usize,
    sample_rate: u32,
) -> omnifuse_status {
    with_request(req, |r| {
        if sample_rate == 0 {
            return Err(Failure::invalid("sample_rate is 0: expected the samples' rate in Hz"));
        }
        // SAFETY: readable for `count` floats by our contract.
        let data = unsafe { slice(samples, count, "samples")? };
        r.push(RawInput::Pcm { samples: data.to_vec(), sample_rate });
        Ok(())
    })
}

/// Set the request's parameters from a JSON object such as
/// `{"task_type":"sentiment","max_tokens":8,"temperature":0.7,"top_k":40,"seed":1}`
/// (the `parameters` object of the JSON request format; replaces earlier parameters).
///
/// # Safety
/// `req` is a live request; `json` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_request_set_parameters_json(
    req: *mut omnifuse_request,
    json: *const c_char,
) -> omnifuse_status {
    with_request(req, |r| {
        // SAFETY: NULL or NUL-terminated by our contract.
        let text = unsafe { cstr(json, "json")? };
        let params = parse_parameters(text)?;
        Arc::make_mut(&mut r.body).params = params;
        Ok(())
    })
}

/// Parse a `parameters` object with the request parser, so both accept exactly the same.
fn parse_parameters(text: &str) -> Outcome<Parameters> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Failure::new(OMNIFUSE_STATUS_BAD_INPUT, format!("parameters: not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(Failure::new(
            OMNIFUSE_STATUS_BAD_INPUT,
            format!("parameters: expected a JSON object, got {value}"),
        ));
    }
    let wrapped = serde_json::json!({ "inputs": [{ "text": "" }], "parameters": value });
    Ok(Request::from_json(&wrapped.to_string())?.parameters)
}

/// Number of inputs the request holds, written to `*count`.
///
/// # Safety
/// `req` is a live request; `count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_request_input_count(
    req: *const omnifuse_request,
    count: *mut usize,
) -> omnifuse_status {
    guard(|| {
        // SAFETY: NULL or a live request by our contract.
        let r = unsafe { handle::borrow(req, "req")? };
        // SAFETY: NULL or writable by our contract.
        unsafe { handle::write_out(count, "count", r.body.inputs.len()) }
    })
}

/// Free a request (NULL is accepted). Jobs already submitted from it are not affected.
///
/// # Safety
/// `req` is NULL or a live request not used by another thread; it is dangling afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_request_destroy(req: *mut omnifuse_request) -> omnifuse_status {
    guard(|| {
        // SAFETY: NULL or a live request, not used again, by our contract.
        unsafe { handle::destroy(req, "req")? };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parameters_parse_like_the_request_format() {
        let p = parse_parameters(r#"{"task_type":["sentiment"],"max_tokens":3}"#).unwrap();
        assert_eq!(p.tasks, vec!["sentiment".to_string()]);
        assert_eq!(p.max_tokens, Some(3));
        let e = parse_parameters(r#"{"beam":2}"#).unwrap_err();
        assert!(e.message.contains("unknown parameter \"beam\""), "{}", e.message);
        let e = parse_parameters("[1]").unwrap_err();
        assert!(e.message.contains("expected a JSON object"), "{}", e.message);
    }
}
