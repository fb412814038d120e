//! The server's lifecycle: readiness waits for the warm-up request (which counts in no
//! statistics), and stopping answers the requests already accepted before it returns.

#![allow(clippy::panic, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::extract::{Path, State};
use common::*;
use omnifuse_http::state::AppState;
use omnifuse_http::{ApiKeys, oip, serve_models};

#[test]
fn readiness_waits_for_the_warm_up() {
    let models = serve_models(&config(), vec![("omni".to_string(), model())]).unwrap();
    let state = AppState::new(models, ApiKeys::none(), config());
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (status, body) = rt.block_on(oip::ready(State(state.clone())));
    assert_eq!((status.as_u16(), &body.0["ready"]), (503, &serde_json::json!(false)));
    let (status, _) = rt.block_on(oip::model_ready(State(state.clone()), Path("omni".into()))).unwrap();
    assert_eq!(status.as_u16(), 503);

    state.models[0].warm_up().unwrap();
    let (status, body) = rt.block_on(oip::ready(State(state.clone())));
    assert_eq!((status.as_u16(), &body.0["ready"]), (200, &serde_json::json!(true)));
    let (status, body) = rt.block_on(oip::model_ready(State(state.clone()), Path("omni".into()))).unwrap();
    assert_eq!((status.as_u16(), &body.0["name"]), (200, &serde_json::json!("omni")));
    assert_eq!(state.models[0].stats().snapshot().inference_count, 0, "the warm-up is not counted");
    assert_eq!(state.models[0].monitor().snapshot().window, 0, "nor monitored");
}

#[test]
fn stopping_answers_the_accepted_requests() {
    let mut c = config();
    c.batching.max_delay_ms = 1500;
    let server = start(c, ApiKeys::none());
    let a = server.addr();
    assert_eq!(get(a, "/v2/health/ready").status, 200, "spawn returns once warmed up");
    let body = r#"{"inputs":[{"text":"still answered"}],"parameters":{"task_type":"sentiment"}}"#;
    let pending = std::thread::spawn(move || post(a, "/v1/infer", body));
    while !get(a, "/metrics").body.contains("omnifuse_queue_depth{model=\"omni\"} 1") {
        assert!(!pending.is_finished(), "the request ran before it was seen queued");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.stop().unwrap();
    let r = pending.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["heads"]["sentiment"]["kind"], "classification");
    assert!(std::net::TcpStream::connect(a).is_err(), "a stopped server accepts no connection");
}
