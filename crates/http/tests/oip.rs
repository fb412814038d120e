//! The Open Inference Protocol v2 over real HTTP: health, server and model metadata,
//! readiness, Triton's config and statistics, and typed-tensor inference that answers what
//! the model answers in-process.

#![allow(clippy::panic, clippy::unwrap_used)]

mod common;

use common::*;
use omnifuse_http::ApiKeys;
use omnifuse_model::input::RawInput;
use omnifuse_model::output::HeadResult;
use omnifuse_model::request::Parameters;
use serde_json::{Value, json};

#[test]
fn health_metadata_config_and_stats() {
    let server = start(config(), ApiKeys::none());
    let a = server.addr();
    assert_eq!(get(a, "/v2/health/live").json()["live"], true);
    assert_eq!(get(a, "/v2/health/ready").json()["ready"], true);
    let meta = get(a, "/v2").json();
    assert_eq!(meta["name"], "omnifuse");
    assert!(meta["extensions"].as_array().unwrap().contains(&json!("statistics")));

    let m = get(a, "/v2/models/omni").json();
    assert_eq!(m["name"], "omni");
    assert_eq!(m["versions"], json!(["1"]));
    let inputs: Vec<&str> = m["inputs"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(inputs, ["text", "image", "audio", "video"]);
    assert!(m["inputs"].as_array().unwrap().iter().all(|i| i["datatype"] == "BYTES"));
    let outputs: Vec<(String, String, Value)> = m["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap().into(), o["datatype"].as_str().unwrap().into(), o["shape"].clone()))
        .collect();
    assert!(outputs.contains(&("sentiment".into(), "FP32".into(), json!([3]))), "{outputs:?}");
    assert!(outputs.contains(&("retrieval".into(), "FP32".into(), json!([128]))), "{outputs:?}");
    assert!(outputs.contains(&("caption".into(), "BYTES".into(), json!([1]))), "{outputs:?}");
    assert_eq!(get(a, "/v2/models/omni/versions/1").json()["name"], "omni");
    assert_eq!(get(a, "/v2/models/omni/versions/7").status, 404);
    assert_eq!(get(a, "/v2/models/omni/ready").json()["ready"], true);
    let r = get(a, "/v2/models/other");
    assert_eq!(r.status, 404);
    assert!(r.error().contains("no model 'other'"));

    let c = get(a, "/v2/models/omni/config").json();
    assert_eq!(c["name"], "omni");
    assert_eq!(c["input"][0]["data_type"], "TYPE_STRING");
    assert!(c["output"].as_array().unwrap().iter().any(|o| o["name"] == "sentiment" && o["data_type"] == "TYPE_FP32"));
    assert_eq!(c["dynamic_batching"]["max_queue_delay_microseconds"], 5000);

    let r = post(
        a,
        "/v2/models/omni/infer",
        r#"{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["hi"]}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let s = get(a, "/v2/models/omni/stats").json();
    let st = &s["model_stats"][0];
    assert_eq!((st["name"].as_str(), st["version"].as_str()), (Some("omni"), Some("1")));
    assert_eq!((st["inference_count"].as_u64(), st["execution_count"].as_u64()), (Some(1), Some(1)));
    assert_eq!(st["inference_stats"]["success"]["count"], 1);
    assert!(st["inference_stats"]["success"]["ns"].as_u64().unwrap() > 0);
    assert_eq!(st["inference_stats"]["fail"]["count"], 0);
    assert_eq!(st["batch_stats"][0]["batch_size"], 1);
    assert_eq!(st["batch_stats"][0]["compute_infer"]["count"], 1);
    assert_eq!(get(a, "/v2/models/stats").json()["model_stats"].as_array().unwrap().len(), 1);
}

fn tensor<'v>(outputs: &'v Value, name: &str) -> &'v Value {
    outputs
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name}: {outputs}"))
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[test]
fn infer_with_typed_tensors_answers_what_the_model_answers() {
    let server = start(config(), ApiKeys::none());
    let a = server.addr();
    let image = png(12, 12);
    let body = json!({
        "id": "req-7",
        "parameters": {"max_tokens": 5, "binary_data_output": false},
        "inputs": [
            {"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a photo", "of the sea"]},
            {"name": "image", "datatype": "BYTES", "shape": [1, 1], "data": [[b64(&image)]],
             "parameters": {"binary_data_encoding": "base64"}},
        ]
    });
    let r = post(a, "/v2/models/omni/infer", &body.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (v["model_name"].as_str(), v["model_version"].as_str(), v["id"].as_str()),
        (Some("omni"), Some("1"), Some("req-7"))
    );

    let inputs = [RawInput::Text("a photo".into()), RawInput::Text("of the sea".into()), RawInput::Bytes(image)];
    let params = Parameters { max_tokens: Some(5), ..Parameters::default() };
    let expected = model().run(&inputs, &params).unwrap();
    let out = &v["outputs"];
    for (name, result) in &expected.heads {
        match result {
            HeadResult::Classification { label, probabilities, .. } => {
                let t = tensor(out, name);
                assert_eq!((t["datatype"].as_str(), &t["shape"]), (Some("FP32"), &json!([probabilities.len()])));
                assert_eq!(&floats(&t["data"]), probabilities);
                assert_eq!(tensor(out, &format!("{name}_label"))["data"], json!([label]));
            }
            HeadResult::Retrieval { fused, inputs, .. } => {
                assert_eq!(&floats(&tensor(out, name)["data"]), fused);
                let t = tensor(out, &format!("{name}_inputs"));
                assert_eq!(t["shape"], json!([3, fused.len()]));
                assert_eq!(floats(&t["data"]), inputs.concat());
            }
            HeadResult::Generation { tokens, text, .. } => {
                let t = tensor(out, name);
                assert_eq!((t["datatype"].as_str(), &t["data"]), (Some("BYTES"), &json!([text])));
                assert_eq!(tensor(out, &format!("{name}_tokens"))["data"], json!(tokens));
            }
        }
    }
    assert_eq!(out.as_array().unwrap().len(), 6);

    let only = json!({
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["good"]}],
        "outputs": [{"name": "sentiment_label"}]
    });
    let r = post(a, "/v2/models/omni/infer", &only.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let names: Vec<String> =
        r.json()["outputs"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap().into()).collect();
    assert_eq!(names, ["sentiment_label"]);
}

#[test]
fn bad_tensors_get_4xx_naming_the_problem() {
    let server = start(config(), ApiKeys::none());
    let a = server.addr();
    let cases: [(&str, u16, &str); 11] = [
        (
            r#"{"inputs":[{"name":"text","datatype":"FP32","shape":[1],"data":[1.0]}]}"#,
            400,
            "datatype FP32: expected BYTES",
        ),
        (r#"{"inputs":[{"name":"pixels","datatype":"BYTES","shape":[1],"data":["x"]}]}"#, 400, "named 'pixels'"),
        (r#"{"inputs":[{"name":"text","datatype":"BYTES","shape":[2],"data":["x"]}]}"#, 400, "2 elements"),
        (r#"{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":[3]}]}"#, 400, "holds a number"),
        (r#"{"inputs":[{"name":"image","datatype":"BYTES","shape":[1],"data":["%%%"]}]}"#, 400, "invalid base64"),
        (r#"{"inputs":[{"name":"text","datatype":"BYTES","shape":[-1],"data":["x"]}]}"#, 400, "non-negative integers"),
        (r#"{"inputs":[]}"#, 400, "empty"),
        (
            r#"{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["x"]}],"outputs":[{"name":"nope"}]}"#,
            400,
            "no output 'nope'",
        ),
        (
            r#"{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["x"]}],"parameters":{"beam":2}}"#,
            400,
            "unknown parameter \"beam\"",
        ),
        (
            r#"{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["x"],"parameters":{"binary_data_size":4}}]}"#,
            400,
            "binary tensor data extension",
        ),
        (
            r#"{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["x"]}],"parameters":{"task_type":"nope"}}"#,
            422,
            "unknown task 'nope'",
        ),
    ];
    for (body, status, want) in cases {
        let r = post(a, "/v2/models/omni/infer", body);
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.error().contains(want), "{body}: '{}' lacks '{want}'", r.error());
    }
    let r = post(a, "/v2/models/nope/infer", r#"{"inputs":[]}"#);
    assert_eq!(r.status, 404);
}
