//! A matrix of malformed requests over real HTTP — bad JSON, bad base64, corrupt media,
//! dimensions past the model's limits, wrong Open Inference Protocol types and shapes, missing
//! or wrong keys, wrong content types, unknown routes and methods — each answered with its
//! 4xx and a JSON `{"error": …}` message; afterwards the server still answers a good request.

#![allow(clippy::panic, clippy::unwrap_used)]

mod common;

use common::*;
use omnifuse_http::ApiKeys;

const KEY: &str = "matrix-key";
const GOOD: &str = r#"{"inputs":[{"text":"hello"}],"parameters":{"task_type":"sentiment"}}"#;

/// CRC-32 (IEEE), to write PNG chunks by hand.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// A PNG whose header claims `w`×`h` pixels, with one empty data chunk.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[]);
    chunk(b"IEND", &[]);
    out
}

/// One malformed request and the status it must get.
struct Case {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    key: Option<&'static str>,
    content_type: Option<&'static str>,
    body: Option<String>,
    status: u16,
}

fn case(what: &'static str, method: &'static str, path: &'static str, body: Option<String>, status: u16) -> Case {
    Case { what, method, path, key: Some(KEY), content_type: Some("application/json"), body, status }
}

fn infer(what: &'static str, body: impl Into<String>, status: u16) -> Case {
    case(what, "POST", "/v1/infer", Some(body.into()), status)
}

fn oip(what: &'static str, body: serde_json::Value, status: u16) -> Case {
    case(what, "POST", "/v2/models/omni/infer", Some(body.to_string()), status)
}

fn cases() -> Vec<Case> {
    use serde_json::json;
    let png_bad = b64(b"\x89PNG\r\n\x1a\nthis is not a PNG stream");
    let wav_bad = b64(b"RIFF\x10\x00\x00\x00WAVEfmt \xff\xff\xff\xff");
    let huge_png = b64(&png_claiming(200_000, 200_000));
    let huge_y4m = b64(b"YUV4MPEG2 W100000 H100000 F25:1 C420jpeg\nFRAME\n\x00\x00\x00\x00");
    let text = |data: serde_json::Value, datatype: &str, shape: serde_json::Value| json!({"inputs": [{"name": "text", "datatype": datatype, "shape": shape, "data": data}]});
    let mut v = vec![
        infer("truncated JSON", r#"{"inputs":[{"text":"x"}"#, 400),
        infer("a JSON list", "[1,2,3]", 400),
        infer("JSON null", "null", 400),
        infer("an empty body", "", 400),
        infer("no inputs key", r#"{"parameters":{}}"#, 400),
        infer("empty inputs", r#"{"inputs":[]}"#, 400),
        infer("a number as text", r#"{"inputs":[{"text":5}]}"#, 400),
        infer("an unknown input kind", r#"{"inputs":[{"smell":"roses"}]}"#, 400),
        infer("invalid base64", r#"{"inputs":[{"image":"!!!not base64"}]}"#, 400),
        infer("parameters as a list", r#"{"inputs":[{"text":"x"}],"parameters":[]}"#, 400),
        infer("task_type as a number", r#"{"inputs":[{"text":"x"}],"parameters":{"task_type":3}}"#, 400),
        infer("an unknown task", r#"{"inputs":[{"text":"x"}],"parameters":{"task_type":"juggling"}}"#, 422),
        infer("a corrupt PNG", format!(r#"{{"inputs":[{{"image":"{png_bad}"}}]}}"#), 422),
        infer("a corrupt WAV", format!(r#"{{"inputs":[{{"audio":"{wav_bad}"}}]}}"#), 422),
        infer("bytes of no known format", format!(r#"{{"inputs":[{{"image":"{}"}}]}}"#, b64(b"GIF89a....")), 400),
        infer("a PNG of 200000x200000 pixels", format!(r#"{{"inputs":[{{"image":"{huge_png}"}}]}}"#), 422),
        infer("a video of 100000x100000 frames", format!(r#"{{"inputs":[{{"video":"{huge_y4m}"}}]}}"#), 422),
        oip("OIP: an unknown top-level key", json!({"inputs": [], "bogus": 1}), 400),
        oip("OIP: inputs not a list", json!({"inputs": {"name": "text"}}), 400),
        oip("OIP: an FP32 text tensor", text(json!([1.0]), "FP32", json!([1])), 400),
        oip("OIP: shape disagrees with data", text(json!(["a", "b"]), "BYTES", json!([3])), 400),
        oip("OIP: a negative shape", text(json!(["a"]), "BYTES", json!([-1])), 400),
        oip(
            "OIP: an unknown input name",
            json!({"inputs": [{"name": "smell", "datatype": "BYTES", "shape": [1], "data": ["x"]}]}),
            400,
        ),
        oip(
            "OIP: an id that is a number",
            json!({"id": 7, "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["x"]}]}),
            400,
        ),
        oip(
            "OIP: an unknown output",
            json!({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["x"]}], "outputs": [{"name": "nope"}]}),
            400,
        ),
        case("OIP: an unknown model", "POST", "/v2/models/nobody/infer", Some(GOOD.into()), 404),
        case("OIP: an unknown version", "POST", "/v2/models/omni/versions/99/infer", Some(GOOD.into()), 404),
        case("jobs: truncated JSON", "POST", "/v1/jobs", Some("{".into()), 400),
        case("jobs: an unknown id", "GET", "/v1/jobs/no-such-job", None, 404),
        case("index: a list body", "POST", "/v1/index/things", Some("[]".into()), 400),
        case("search: no query", "GET", "/v1/search", None, 400),
        case("search: an unknown index", "GET", "/v1/search?index=none&text=x", None, 404),
        case("an unknown route", "GET", "/v1/nothing-here", None, 404),
        case("an unknown route under /v2", "POST", "/v2/models/omni/explode", Some(GOOD.into()), 404),
        case("a wrong method", "DELETE", "/v1/infer", None, 405),
        case("GET on an inference route", "GET", "/v2/models/omni/infer", None, 405),
        case(
            "a body past max_body_bytes",
            "POST",
            "/v1/infer",
            Some(format!(r#"{{"inputs":[{{"text":"{}"}}]}}"#, "x".repeat(70_000))),
            413,
        ),
    ];
    let no_key = Case { key: None, ..infer("no API key", GOOD, 401) };
    let wrong_key = Case { key: Some("not-the-key"), ..infer("a wrong API key", GOOD, 401) };
    let xml = Case { content_type: Some("application/xml"), ..infer("an XML content type", GOOD, 415) };
    let plain = Case { content_type: Some("text/plain"), ..infer("a text/plain content type", GOOD, 415) };
    let multipart =
        Case { content_type: Some("multipart/form-data; boundary=x"), ..infer("a multipart content type", GOOD, 415) };
    v.extend([no_key, wrong_key, xml, plain, multipart]);
    v
}

#[test]
fn every_malformed_request_gets_its_4xx_and_the_server_keeps_serving() {
    let mut c = config();
    c.max_body_bytes = 64 * 1024;
    let server = start(c, ApiKeys::new([KEY]));
    let a = server.addr();
    let cases = cases();
    assert!(cases.len() >= 30, "the matrix has {} cases", cases.len());
    let mut wrong = Vec::new();
    for c in &cases {
        let auth = c.key.map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|v| ("Authorization", v.as_str())).collect();
        let r = send_typed(a, c.method, c.path, &headers, c.content_type, c.body.as_deref().map(str::as_bytes));
        let message = serde_json::from_str::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .filter(|m| !m.is_empty());
        if r.status != c.status || message.is_none() {
            wrong.push(format!("{}: expected {} with an error message, got {} {}", c.what, c.status, r.status, r.body));
        }
    }
    assert!(wrong.is_empty(), "{} of {} cases answered wrongly:\n{}", wrong.len(), cases.len(), wrong.join("\n"));

    let r = send(a, "POST", "/v1/infer", &[("Authorization", "Bearer matrix-key")], Some(GOOD.as_bytes()));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["heads"]["sentiment"]["kind"], "classification");
    let curl_default = send_typed(
        a,
        "POST",
        "/v1/infer",
        &[("Authorization", "Bearer matrix-key")],
        Some("application/x-www-form-urlencoded"),
        Some(GOOD.as_bytes()),
    );
    assert_eq!(curl_default.status, 200, "curl -d's default content type is accepted: {}", curl_default.body);
}
