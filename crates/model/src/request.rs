//! The JSON request format:
//!
//! ```json
//! {"inputs": [{"text": "描述这张图片"}, {"image": "<base64 png/jpeg>"}, {"audio": "<base64 wav>"},
//!             {"video": "<base64 y4m>"}, {"frames": ["<base64 png>", "..."]}],
//!  "parameters": {"task_type": "visual_question_answering", "max_tokens": 100}}
//! ```
//!
//! Each input object has exactly one key; file contents are base64 (standard alphabet, padding
//! optional, ASCII whitespace and a `data:…;base64,` prefix ignored), and a declared modality
//! must match the one the bytes are detected as. Unknown keys are errors.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::input::{FileKind, Modality, RawInput, detect};

/// A parsed request: its inputs in order and its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The inputs, in request order.
    pub inputs: Vec<RawInput>,
    /// The generation and task parameters.
    pub parameters: Parameters,
}

/// The `parameters` object of a request; absent fields are `None` / empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parameters {
    /// `task_type`, a string or a list of strings, kept verbatim (the model maps them to heads).
    pub tasks: Vec<String>,
    /// Most generated tokens.
    pub max_tokens: Option<usize>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Sampling top-k.
    pub top_k: Option<usize>,
    /// Sampling seed.
    pub seed: Option<u64>,
}

const INPUT_KEYS: &str = "text, image, audio, video or frames";
const PARAMETER_KEYS: &str = "task_type, max_tokens, temperature, top_k or seed";

impl Request {
    /// Parse a JSON request; errors say what was seen and what was expected.
    pub fn from_json(text: &str) -> Result<Request> {
        let value: Value = serde_json::from_str(text).map_err(|e| Error::Request(format!("not valid JSON: {e}")))?;
        let Value::Object(top) = value else {
            return Err(Error::Request(format!(
                "expected a JSON object with \"inputs\" and \"parameters\", got {}",
                kind(&value)
            )));
        };
        if let Some(key) = top.keys().find(|k| !matches!(k.as_str(), "inputs" | "parameters")) {
            return Err(Error::Request(format!("unknown key \"{key}\": expected inputs or parameters")));
        }
        let inputs = match top.get("inputs") {
            Some(Value::Array(items)) if !items.is_empty() => {
                items.iter().enumerate().map(|(i, v)| parse_input(i, v)).collect::<Result<Vec<_>>>()?
            }
            Some(Value::Array(_)) => {
                return Err(Error::Request("\"inputs\" is empty: expected at least one input".into()));
            }
            Some(other) => {
                return Err(Error::Request(format!("\"inputs\" is {}: expected a list of inputs", kind(other))));
            }
            None => return Err(Error::Request("\"inputs\" is missing: expected a list of inputs".into())),
        };
        let parameters = match top.get("parameters") {
            None | Some(Value::Null) => Parameters::default(),
            Some(Value::Object(map)) => parse_parameters(map)?,
            Some(other) => {
                return Err(Error::Request(format!("\"parameters\" is {}: expected an object", kind(other))));
            }
        };
        Ok(Request { inputs, parameters })
    }
}

/// A JSON value's kind, for error messages (also the HTTP server's).
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Input `index`: an object with exactly one of the input keys.
fn parse_input(index: usize, value: &Value) -> Result<RawInput> {
    let bad = |d: String| Error::input(index, d);
    let Value::Object(map) = value else {
        return Err(bad(format!("is {}: expected an object with one key of {INPUT_KEYS}", kind(value))));
    };
    let mut entries = map.iter();
    let (key, inner) = match (entries.next(), entries.next()) {
        (Some(entry), None) => entry,
        _ => {
            let keys: Vec<&str> = map.keys().map(String::as_str).collect();
            return Err(bad(format!("has keys {keys:?}: expected exactly one of {INPUT_KEYS}")));
        }
    };
    let string = |what: &str| match inner {
        Value::String(s) => Ok(s.as_str()),
        other => Err(bad(format!("\"{key}\" is {}: expected {what}", kind(other)))),
    };
    let file = || {
        let text = string("a base64 string")?;
        decode_base64(text).map(RawInput::Bytes).map_err(|e| bad(format!("\"{key}\": {e}")))
    };
    let (declared, input) = match key.as_str() {
        "text" => return Ok(RawInput::Text(string("a string")?.to_string())),
        "image" => (Modality::Image, file()?),
        "audio" => (Modality::Audio, file()?),
        "video" => (Modality::Video, file()?),
        "frames" => (Modality::Video, parse_frames(index, inner)?),
        other => return Err(bad(format!("unknown key \"{other}\": expected one of {INPUT_KEYS}"))),
    };
    let detected = detect(index, &input)?;
    if detected != declared {
        let seen = match &input {
            RawInput::Bytes(b) => FileKind::sniff(b).map_or("unknown", FileKind::name),
            _ => "unknown",
        };
        return Err(bad(format!("declared as {declared} but the bytes are {detected} ({seen})")));
    }
    Ok(input)
}

/// A `frames` list of base64 PNG/JPEG strings.
fn parse_frames(index: usize, value: &Value) -> Result<RawInput> {
    let Value::Array(items) = value else {
        return Err(Error::input(index, format!("\"frames\" is {}: expected a list of base64 images", kind(value))));
    };
    let frames = items
        .iter()
        .enumerate()
        .map(|(k, item)| match item {
            Value::String(s) => {
                decode_base64(s).map(RawInput::Bytes).map_err(|e| Error::input(index, format!("\"frames\"[{k}]: {e}")))
            }
            other => Err(Error::input(index, format!("\"frames\"[{k}] is {}: expected a base64 string", kind(other)))),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RawInput::Frames(frames))
}

/// Standard-alphabet base64 with optional padding; ASCII whitespace and a data-URL prefix are
/// ignored.
pub fn decode_base64(text: &str) -> std::result::Result<Vec<u8>, String> {
    let body = match text.split_once(";base64,") {
        Some((prefix, rest)) if prefix.starts_with("data:") => rest,
        _ => text,
    };
    let compact: Vec<u8> = body.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err("the base64 string is empty: expected the file's contents".to_string());
    }
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    engine.decode(&compact).map_err(|e| {
        let shown = String::from_utf8_lossy(compact.get(..compact.len().min(16)).unwrap_or_default()).into_owned();
        format!("invalid base64 ({e}) in a string starting \"{shown}\": expected standard base64 of the file")
    })
}

/// The `parameters` object.
fn parse_parameters(map: &Map<String, Value>) -> Result<Parameters> {
    let bad = |key: &str, value: &Value, expected: &str| {
        Error::Request(format!("parameters.{key} is {} ({value}): expected {expected}", kind(value)))
    };
    let count = |key: &str, value: &Value| {
        value.as_u64().and_then(|v| usize::try_from(v).ok()).ok_or_else(|| bad(key, value, "a non-negative integer"))
    };
    let mut p = Parameters::default();
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "task_type" => {
                p.tasks = parse_tasks(value).ok_or_else(|| bad(key, value, "a string or a list of strings"))?
            }
            "max_tokens" => p.max_tokens = Some(count(key, value)?),
            "top_k" => p.top_k = Some(count(key, value)?),
            "seed" => p.seed = Some(value.as_u64().ok_or_else(|| bad(key, value, "a non-negative integer"))?),
            "temperature" => {
                let t = value.as_f64().map(|t| t as f32).filter(|t| t.is_finite());
                p.temperature = Some(t.ok_or_else(|| bad(key, value, "a finite number"))?);
            }
            other => {
                return Err(Error::Request(format!("unknown parameter \"{other}\": expected {PARAMETER_KEYS}")));
            }
        }
    }
    Ok(p)
}

fn parse_tasks(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items.iter().map(|v| v.as_str().map(str::to_string)).collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tests::{png, wav, y4m};
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

    #[test]
    fn parses_every_input_kind_and_parameters() {
        let image = png(3, 2, |x, y| [x as u8, y as u8, 7]);
        let audio = wav(&[0.5; 20], 16000);
        let video = y4m(2, 2, 2);
        let json = format!(
            r#"{{"inputs":[{{"text":"描述这张图片"}},{{"image":"{}"}},{{"audio":"{}"}},{{"video":"{}"}},
                {{"frames":["{}"]}}],
                "parameters":{{"task_type":"visual_question_answering","max_tokens":100,"temperature":0.5,
                "top_k":5,"seed":7}}}}"#,
            STANDARD.encode(&image),
            STANDARD_NO_PAD.encode(&audio),
            STANDARD.encode(&video),
            STANDARD.encode(&image)
        );
        let req = Request::from_json(&json).unwrap();
        assert_eq!(
            req.inputs,
            vec![
                RawInput::Text("描述这张图片".into()),
                RawInput::Bytes(image.clone()),
                RawInput::Bytes(audio),
                RawInput::Bytes(video),
                RawInput::Frames(vec![RawInput::Bytes(image)]),
            ]
        );
        assert_eq!(
            req.parameters,
            Parameters {
                tasks: vec!["visual_question_answering".into()],
                max_tokens: Some(100),
                temperature: Some(0.5),
                top_k: Some(5),
                seed: Some(7),
            }
        );
        let req = Request::from_json(r#"{"inputs":[{"text":"x"}],"parameters":{"task_type":["a","b"]}}"#).unwrap();
        assert_eq!(req.parameters.tasks, vec!["a".to_string(), "b".to_string()]);
        let req = Request::from_json(r#"{"inputs":[{"text":"x"}]}"#).unwrap();
        assert_eq!(req.parameters, Parameters::default());
    }

    #[test]
    fn base64_tolerates_whitespace_and_data_urls() {
        let bytes = png(1, 1, |_, _| [1, 2, 3]);
        let wrapped = format!("data:image/png;base64,{}\n", STANDARD.encode(&bytes));
        assert_eq!(decode_base64(&wrapped).unwrap(), bytes);
    }

    fn error(json: &str) -> String {
        Request::from_json(json).unwrap_err().to_string()
    }

    #[test]
    fn errors_say_what_was_seen_and_expected() {
        let wav64 = STANDARD.encode(wav(&[0.0; 4], 8000));
        let cases: Vec<(String, &[&str])> = vec![
            ("[1]".into(), &["expected a JSON object", "a list"]),
            ("{".into(), &["not valid JSON"]),
            (r#"{"inputs":[]}"#.into(), &["empty"]),
            (r#"{"inputs":{}}"#.into(), &["an object", "expected a list"]),
            (r#"{"parameters":{}}"#.into(), &["missing"]),
            (r#"{"inputs":[{"text":"a"}],"extra":1}"#.into(), &["unknown key \"extra\""]),
            (r#"{"inputs":[{"text":"a"},{"picture":"AAAA"}]}"#.into(), &["input 1", "unknown key \"picture\""]),
            (r#"{"inputs":[{"text":"a","image":"AAAA"}]}"#.into(), &["input 0", "exactly one"]),
            (r#"{"inputs":[{"text":5}]}"#.into(), &["\"text\" is a number"]),
            (r#"{"inputs":[{"image":"!!!not base64"}]}"#.into(), &["input 0", "invalid base64"]),
            (r#"{"inputs":[{"image":"R0lGODlh"}]}"#.into(), &["47 49 46 38 39 61", "expected PNG"]),
            (format!(r#"{{"inputs":[{{"image":"{wav64}"}}]}}"#), &["declared as image", "audio (RIFF/WAVE)"]),
            (format!(r#"{{"inputs":[{{"frames":["{wav64}"]}}]}}"#), &["frame 0", "RIFF/WAVE"]),
            (r#"{"inputs":[{"text":"a"}],"parameters":{"max_tokens":-1}}"#.into(), &["max_tokens", "non-negative"]),
            (r#"{"inputs":[{"text":"a"}],"parameters":{"task_type":3}}"#.into(), &["task_type", "list of strings"]),
            (r#"{"inputs":[{"text":"a"}],"parameters":{"beam":3}}"#.into(), &["unknown parameter \"beam\""]),
        ];
        for (json, wants) in cases {
            let err = error(&json);
            for want in wants {
                assert!(err.contains(want), "{json}: {err} lacks {want}");
            }
        }
    }
}
