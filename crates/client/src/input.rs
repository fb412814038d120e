//! The inputs of a request as the server's JSON format takes them: text as a string, files
//! (PNG/JPEG images, WAV audio, Y4M video, a list of video frames) as base64 of their bytes
//! under the key of their modality. A file's modality is found from its magic bytes, as the
//! server's own detector does, so the declared modality always matches.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::error::{ClientError, Result};

/// One input of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// UTF-8 text.
    Text(String),
    /// A PNG or JPEG file's bytes.
    Image(Vec<u8>),
    /// A RIFF/WAVE file's bytes.
    Audio(Vec<u8>),
    /// A YUV4MPEG2 (Y4M) file's bytes.
    Video(Vec<u8>),
    /// A video as a list of PNG/JPEG frames.
    Frames(Vec<Vec<u8>>),
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_MAGIC: &[u8] = b"\xff\xd8\xff";
const Y4M_MAGIC: &[u8] = b"YUV4MPEG2 ";

impl Input {
    /// A text input.
    pub fn text(text: impl Into<String>) -> Self {
        Input::Text(text.into())
    }

    /// A file's bytes, its modality found from its magic bytes; `what` names it in errors.
    pub fn file(what: &str, bytes: Vec<u8>) -> Result<Self> {
        if bytes.starts_with(PNG_MAGIC) || bytes.starts_with(JPEG_MAGIC) {
            Ok(Input::Image(bytes))
        } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WAVE".as_slice()) {
            Ok(Input::Audio(bytes))
        } else if bytes.starts_with(Y4M_MAGIC) {
            Ok(Input::Video(bytes))
        } else {
            let head: String = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
            Err(ClientError::Input {
                what: what.to_string(),
                reason: format!(
                    "{} bytes starting {head:?} are no known file kind: expected PNG, JPEG, WAV or Y4M \
                     (or a .txt file for text)",
                    bytes.len()
                ),
            })
        }
    }

    /// A file on disk: `.txt` files are text, others are detected by content.
    pub fn from_path(path: &Path) -> Result<Self> {
        let what = path.display().to_string();
        let bytes = std::fs::read(path)
            .map_err(|e| ClientError::Input { what: what.clone(), reason: format!("cannot read it: {e}") })?;
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("txt")) {
            return String::from_utf8(bytes)
                .map(Input::Text)
                .map_err(|e| ClientError::Input { what, reason: format!("a .txt file that is not UTF-8: {e}") });
        }
        Input::file(&what, bytes)
    }

    /// The modality's name as the server reports it.
    pub fn modality(&self) -> &'static str {
        match self {
            Input::Text(_) => "text",
            Input::Image(_) => "image",
            Input::Audio(_) => "audio",
            Input::Video(_) | Input::Frames(_) => "video",
        }
    }

    /// The input as a JSON object of the request format.
    pub fn to_json(&self) -> Value {
        let b64 = |b: &[u8]| STANDARD.encode(b);
        match self {
            Input::Text(t) => json!({ "text": t }),
            Input::Image(b) => json!({ "image": b64(b) }),
            Input::Audio(b) => json!({ "audio": b64(b) }),
            Input::Video(b) => json!({ "video": b64(b) }),
            Input::Frames(frames) => json!({ "frames": frames.iter().map(|f| b64(f)).collect::<Vec<_>>() }),
        }
    }
}

/// The `inputs` list of a request.
pub fn inputs_json(inputs: &[Input]) -> Value {
    Value::Array(inputs.iter().map(Input::to_json).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_keyed_by_their_detected_modality() {
        let png = [PNG_MAGIC, b"rest"].concat();
        assert_eq!(Input::file("a", png.clone()).ok(), Some(Input::Image(png.clone())));
        let wav = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        assert_eq!(Input::file("b", wav.clone()).ok().map(|i| i.modality()), Some("audio"));
        assert_eq!(Input::file("c", b"YUV4MPEG2 W2".to_vec()).ok().map(|i| i.modality()), Some("video"));
        let e = Input::file("notes.bin", b"hello".to_vec()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("notes.bin") && e.contains("expected PNG, JPEG, WAV or Y4M"), "{e}");
        assert_eq!(Input::Image(vec![1, 2, 3]).to_json(), json!({"image": "AQID"}));
        assert_eq!(Input::Frames(vec![vec![1]]).to_json(), json!({"frames": ["AQ=="]}));
        assert_eq!(Input::text("hi").to_json(), json!({"text": "hi"}));
    }
}
