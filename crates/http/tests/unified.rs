//! The unified API over real HTTP: `/v1/infer` answers exactly what the model answers
//! in-process, parameters pick heads, errors are 4xx with messages, the job lifecycle,
//! concurrent requests batched together, and the retrieval index.

#![allow(clippy::panic, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use omnifuse_http::ApiKeys;
use omnifuse_model::request::Request;
use serde_json::{Value, json};

fn request_body() -> String {
    json!({
        "inputs": [{"text": "a calm sea at dawn"}, {"image": b64(&png(20, 14))}, {"audio": b64(&wav(4000, 16000))}],
        "parameters": {"max_tokens": 6}
    })
    .to_string()
}

#[test]
fn infer_answers_exactly_what_the_model_answers_in_process() {
    let server = start(config(), ApiKeys::none());
    let body = request_body();
    let reply = post(server.addr(), "/v1/infer", &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let got = without_timing(reply.json());

    let request = Request::from_json(&body).unwrap();
    let expected = model().run(&request.inputs, &request.parameters).unwrap();
    let expected: Value = serde_json::from_str(&serde_json::to_string(&expected).unwrap()).unwrap();
    assert_eq!(got, without_timing(expected));
    let heads = got["heads"].as_object().unwrap();
    assert_eq!(heads.keys().collect::<Vec<_>>(), ["caption", "retrieval", "sentiment"]);
    assert_eq!(got["inputs"].as_array().unwrap().len(), 3);
}

#[test]
fn task_type_picks_heads_and_bad_requests_get_clear_4xx() {
    let server = start(config(), ApiKeys::none());
    let a = server.addr();
    let r = post(a, "/v1/infer", r#"{"inputs":[{"text":"great"}],"parameters":{"task_type":"sentiment"}}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let heads = r.json()["heads"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(heads, ["sentiment"]);
    assert_eq!(r.json()["heads"]["sentiment"]["kind"], "classification");

    let cases: [(&str, u16, &[&str]); 7] = [
        (r#"{"inputs":[{"image":"!!!not base64"}]}"#, 400, &["input 0", "invalid base64"]),
        (r#"{"inputs":[{"text":"x"}"#, 400, &["not valid JSON"]),
        (r#"{"inputs":[{"text":5}]}"#, 400, &["\"text\" is a number", "expected a string"]),
        (r#"{"inputs":[]}"#, 400, &["empty"]),
        (r#"[1,2]"#, 400, &["expected a JSON object"]),
        (r#"{"inputs":[{"text":"x"}],"parameters":{"task_type":"juggling"}}"#, 422, &["unknown task 'juggling'"]),
        (r#"{"inputs":[{"image":"iVBORw0KGgoAAAA="}]}"#, 422, &["input 0"]),
    ];
    for (body, status, wants) in cases {
        let r = post(a, "/v1/infer", body);
        assert_eq!(r.status, status, "{body}: {}", r.body);
        let e = r.error();
        for w in wants {
            assert!(e.contains(w), "{body}: '{e}' lacks '{w}'");
        }
    }
    let r = get(a, "/v1/infer");
    assert_eq!(r.status, 405);
    assert!(r.error().contains("/v1/infer does not take GET"), "{}", r.body);
    let r = get(a, "/v1/nowhere");
    assert_eq!(r.status, 404);
    assert!(r.error().contains("no route /v1/nowhere"));
}

#[test]
fn a_job_is_created_polled_to_done_and_deleted() {
    let server = start(config(), ApiKeys::none());
    let a = server.addr();
    let r = post(a, "/v1/jobs", r#"{"inputs":[{"text":"hello"}],"parameters":{"task_type":"retrieval"}}"#);
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.header("location"), Some(format!("/v1/jobs/{id}").as_str()));
    let done = loop {
        let r = get(a, &format!("/v1/jobs/{id}"));
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        match v["status"].as_str().unwrap() {
            "pending" | "running" => std::thread::sleep(Duration::from_millis(20)),
            "done" => break v,
            other => panic!("job ended {other}: {v}"),
        }
    };
    assert_eq!(done["result"]["heads"]["retrieval"]["kind"], "retrieval");
    assert_eq!(done["result"]["heads"]["retrieval"]["fused"].as_array().unwrap().len(), 128);
    let r = send(a, "DELETE", &format!("/v1/jobs/{id}"), &[], None);
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("deleted")));
    assert_eq!(get(a, &format!("/v1/jobs/{id}")).status, 404);
    assert_eq!(send(a, "DELETE", &format!("/v1/jobs/{id}"), &[], None).status, 404);

    let r = post(a, "/v1/jobs", r#"{"inputs":[{"image":"@@"}]}"#);
    assert_eq!(r.status, 400, "a bad job is refused at once: {}", r.body);
}

#[test]
fn a_cancelled_queued_job_never_runs_and_finished_jobs_expire() {
    let mut c = config();
    c.batching.max_delay_ms = 1500;
    c.job_ttl_s = 1;
    let server = start(c, ApiKeys::none());
    let a = server.addr();
    let r = post(a, "/v1/jobs", r#"{"inputs":[{"text":"never"}]}"#);
    assert_eq!(r.status, 202);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let r = send(a, "DELETE", &format!("/v1/jobs/{id}"), &[], None);
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("cancelled")), "{}", r.body);
    assert_eq!(get(a, &format!("/v1/jobs/{id}")).json()["status"], "cancelled");
    // Past its batch's delay the batch has closed, and it ran nothing.
    std::thread::sleep(Duration::from_millis(2500));
    let stats = get(a, "/v2/models/omni/stats").json();
    assert_eq!(stats["model_stats"][0]["inference_count"], 0, "{stats}");
    // Ended more than the time to live ago: purged.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(get(a, &format!("/v1/jobs/{id}")).status, 404);
}

#[test]
fn concurrent_requests_all_succeed_and_are_batched() {
    let mut c = config();
    c.batching.max_delay_ms = 300;
    let server = start(c, ApiKeys::none());
    let a = server.addr();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                post(
                    a,
                    "/v1/infer",
                    &format!(r#"{{"inputs":[{{"text":"request {i}"}}],"parameters":{{"task_type":"sentiment"}}}}"#),
                )
            })
        })
        .collect();
    for t in threads {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let stats = get(a, "/v2/models/omni/stats").json();
    let s = &stats["model_stats"][0];
    assert_eq!(s["inference_count"], 16);
    assert_eq!(s["inference_stats"]["success"]["count"], 16);
    let sizes: Vec<u64> =
        s["batch_stats"].as_array().unwrap().iter().map(|b| b["batch_size"].as_u64().unwrap()).collect();
    assert!(sizes.iter().any(|&n| n > 1), "no batch held more than one request: {sizes:?}");
    assert!(s["execution_count"].as_u64().unwrap() < 16);
    let metrics = get(a, "/metrics").body;
    assert!(metrics.contains("omnifuse_batch_size_count{model=\"omni\"}"), "{metrics}");
    assert!(
        metrics.contains("omnifuse_http_requests_total{method=\"POST\",route=\"/v1/infer\",status=\"200\"} 16"),
        "{metrics}"
    );
    assert!(metrics.contains("omnifuse_queue_depth{model=\"omni\"} 0"), "{metrics}");
    assert!(metrics.contains("omnifuse_http_request_duration_seconds_count{route=\"/v1/infer\"} 16"), "{metrics}");
}

#[test]
fn an_index_finds_images_from_text() {
    let server = start(config(), ApiKeys::none());
    let a = server.addr();
    let body = json!({
        "inputs": [{"image": b64(&png(16, 16))}, {"text": "a red square"}, {"image": b64(&png(24, 8))}],
        "keys": ["square.png", "caption", "wide.png"]
    });
    let r = post(a, "/v1/index/photos", &body.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["entries"], 3);
    let r = get(a, "/v1/index/photos");
    assert_eq!(r.json()["counts"], json!({"image": 2, "text": 1}));
    let r = get(a, "/v1/search?index=photos&text=a%20red%20square&k=5");
    assert_eq!(r.status, 200, "{}", r.body);
    let matches = r.json()["matches"].as_array().unwrap().clone();
    let keys: Vec<&str> = matches.iter().map(|m| m["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 2, "text finds the two images, not the text: {keys:?}");
    assert!(keys.contains(&"square.png") && keys.contains(&"wide.png"));
    assert!(matches[0]["score"].as_f64().unwrap() >= matches[1]["score"].as_f64().unwrap());
    let by_image = json!({"inputs": [{"image": b64(&png(16, 16))}]}).to_string();
    let r = post(a, "/v1/search?index=photos&k=3", &by_image);
    assert_eq!(r.status, 200, "{}", r.body);
    let m = r.json();
    assert_eq!(m["modality"], "image");
    assert_eq!(m["matches"].as_array().unwrap().len(), 1, "an image finds the text only: {m}");
    assert_eq!(m["matches"][0]["key"], "caption");
    let r = post(a, "/v1/search?index=photos", r#"{"inputs":[{"text":"a"},{"text":"b"}]}"#);
    assert!(r.error().contains("exactly one input"), "{}", r.body);
    assert_eq!(get(a, "/v1/search?index=none&text=x").status, 404);
    assert_eq!(get(a, "/v1/search?text=x").status, 400);
    let r = post(a, "/v1/index/bad%20name", r#"{"inputs":[{"text":"x"}]}"#);
    assert_eq!(r.status, 400, "{}", r.body);
    let r = post(a, "/v1/index/photos", r#"{"inputs":[{"text":"x"}],"keys":["a","b"]}"#);
    assert!(r.error().contains("2 keys for 1 inputs"), "{}", r.body);
}
