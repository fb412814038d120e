//! Authentication, limits and overload over real HTTP: missing or wrong keys get 401 while
//! health probes stay open, oversize bodies 413, a full queue 503, a request that waits past
//! its timeout 504, and no malformed request gets a 5xx.

#![allow(clippy::panic, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use omnifuse_http::ApiKeys;

const INFER: &str = r#"{"inputs":[{"text":"hello"}],"parameters":{"task_type":"sentiment"}}"#;

#[test]
fn keys_are_required_except_for_health() {
    let server = start(config(), ApiKeys::new(["s3cret-key", "other-key"]));
    let a = server.addr();
    let r = post(a, "/v1/infer", INFER);
    assert_eq!(r.status, 401);
    assert!(r.error().contains("missing API key"), "{}", r.body);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = send(a, "POST", "/v1/infer", &[("Authorization", "Bearer s3cret-kez")], Some(INFER.as_bytes()));
    assert_eq!(r.status, 401);
    assert!(r.error().contains("invalid API key"));
    let r = send(a, "POST", "/v1/infer", &[("Authorization", "Basic czNjcmV0LWtleQ==")], Some(INFER.as_bytes()));
    assert_eq!(r.status, 401);
    for path in ["/v2/models/omni", "/v2/models/omni/stats", "/metrics", "/v1/jobs/x", "/v2"] {
        assert_eq!(get(a, path).status, 401, "{path}");
    }
    let r = send(a, "POST", "/v1/infer", &[("Authorization", "Bearer s3cret-key")], Some(INFER.as_bytes()));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(a, "GET", "/v2/models/omni", &[("Authorization", "bearer other-key")], None);
    assert_eq!(r.status, 200, "the scheme is case-insensitive: {}", r.body);
    assert_eq!(get(a, "/v2/health/live").status, 200);
    assert_eq!(get(a, "/v2/health/ready").status, 200);
    let m = send(a, "GET", "/metrics", &[("Authorization", "Bearer s3cret-key")], None).body;
    assert!(m.contains("route=\"/v1/infer\",status=\"401\"} 3"), "{m}");
}

#[test]
fn oversize_bodies_get_413_and_bad_bodies_never_5xx() {
    let mut c = config();
    c.max_body_bytes = 1024;
    let server = start(c, ApiKeys::none());
    let a = server.addr();
    let big = format!(r#"{{"inputs":[{{"text":"{}"}}]}}"#, "x".repeat(2000));
    for path in ["/v1/infer", "/v1/jobs", "/v2/models/omni/infer", "/v1/index/big"] {
        let r = post(a, path, &big);
        assert_eq!(r.status, 413, "{path}: {}", r.body);
        assert!(r.error().contains("limit of 1024 bytes"), "{path}: {}", r.body);
    }
    let bodies = [
        "",
        "null",
        "\u{0}",
        "{",
        "[]",
        "{\"inputs\":null}",
        "{\"inputs\":[null]}",
        "{\"inputs\":[{}]}",
        "{\"inputs\":[{\"text\":\"x\"}],\"parameters\":[]}",
        "{\"inputs\":[{\"frames\":[1]}]}",
        "{\"inputs\":[{\"video\":\"AAAA\"}]}",
        "{\"inputs\":[{\"audio\":\"UklGRgAAAABXQVZF\"}]}",
        "{\"inputs\":[{\"name\":\"text\"}]}",
        "{\"inputs\":[{\"name\":\"text\",\"datatype\":\"BYTES\",\"shape\":[1e300],\"data\":[]}]}",
        "{\"inputs\":[{\"name\":\"text\",\"datatype\":\"BYTES\",\"shape\":[99999999999,99999999999],\"data\":[]}]}",
        "{\"inputs\":[{\"text\":\"x\"}],\"outputs\":[{}],\"id\":3}",
    ];
    for path in ["/v1/infer", "/v1/jobs", "/v2/models/omni/infer", "/v1/index/fuzz"] {
        for b in bodies {
            let r = post(a, path, b);
            if r.status == 202 {
                // A well-formed job the model refuses: it ends failed with a 4xx.
                let id = r.json()["id"].as_str().unwrap().to_string();
                let job = loop {
                    let j = get(a, &format!("/v1/jobs/{id}")).json();
                    if j["status"] != "pending" && j["status"] != "running" {
                        break j;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                };
                assert_eq!(job["status"], "failed", "{b:?}: {job}");
                let status = job["error"]["status"].as_u64().unwrap();
                assert!((400..500).contains(&status), "{b:?}: {job}");
                continue;
            }
            assert!((400..500).contains(&r.status), "{path} {b:?}: {} {}", r.status, r.body);
            assert!(!r.error().is_empty());
        }
    }
    let r = send(a, "POST", "/v1/infer", &[], Some(&[0xff, 0xfe, 0x00]));
    assert_eq!(r.status, 400);
    assert!(r.error().contains("not UTF-8"));
}

#[test]
fn a_full_queue_answers_503_and_a_request_past_its_timeout_504() {
    let mut c = config();
    c.batching.queue_capacity = 1;
    c.batching.max_delay_ms = 3000;
    let server = start(c, ApiKeys::none());
    let a = server.addr();
    let first = std::thread::spawn(move || post(a, "/v1/infer", INFER));
    // Wait until the first request is queued (it waits there for the batch delay), then the
    // next one finds the queue full.
    while !get(a, "/metrics").body.contains("omnifuse_queue_depth{model=\"omni\"} 1") {
        assert!(!first.is_finished(), "the first request ran before it was seen queued");
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = post(a, "/v1/infer", INFER);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.error().contains("queue capacity 1"), "{}", r.body);
    assert_eq!(first.join().unwrap().status, 200);
    let s = get(a, "/v2/models/omni/stats").json();
    assert_eq!(s["model_stats"][0]["inference_stats"]["fail"]["count"], 1);
    drop(server);

    let mut c = config();
    c.batching.max_delay_ms = 2000;
    c.request_timeout_ms = 1;
    let server = start(c, ApiKeys::none());
    let r = post(server.addr(), "/v1/infer", INFER);
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(r.error().contains("timeout"), "{}", r.body);
}

#[test]
fn held_jobs_and_indexes_are_bounded() {
    let mut c = config();
    c.max_jobs = 1;
    c.max_indexes = 1;
    c.batching.max_delay_ms = 1000;
    let server = start(c, ApiKeys::none());
    let a = server.addr();
    assert_eq!(post(a, "/v1/jobs", INFER).status, 202);
    let r = post(a, "/v1/jobs", INFER);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.error().contains("max_jobs"), "{}", r.body);
    let one = r#"{"inputs":[{"text":"x"}]}"#;
    assert_eq!(post(a, "/v1/index/first", one).status, 200);
    assert_eq!(post(a, "/v1/index/first", one).status, 200, "adding to an existing index is fine");
    let r = post(a, "/v1/index/second", one);
    assert_eq!(r.status, 507, "{}", r.body);
    assert!(r.error().contains("max_indexes"), "{}", r.body);
}
