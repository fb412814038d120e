//! `GET /metrics` over real HTTP: the page parses strictly as the Prometheus text format, and
//! the traffic monitor's numbers move with the traffic — after a text-only baseline,
//! image-heavy traffic raises the drift (PSI) past 0.25 and the scale-out signal to 1, and
//! text+image requests give a cross-modal alignment.

#![allow(clippy::panic, clippy::unwrap_used)]

mod common;
mod prometheus;

use common::*;
use omnifuse_http::ApiKeys;
use omnifuse_http::monitor::MonitoringConfig;
use serde_json::json;

const TEXT: &str = r#"{"inputs":[{"text":"a quiet morning"}],"parameters":{"task_type":"sentiment"}}"#;

fn metrics(a: std::net::SocketAddr) -> prometheus::Page {
    let r = get(a, "/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    prometheus::parse(&r.body).unwrap_or_else(|e| panic!("{e}\n{}", r.body))
}

#[test]
fn the_parser_refuses_malformed_pages() {
    prometheus::self_check();
}

#[test]
fn drift_alignment_and_scale_out_follow_the_traffic_mix() {
    let mut c = config();
    c.monitoring =
        MonitoringConfig { window_requests: 6, baseline_requests: 6, scale_out_image_share: 0.6, scale_out_after_s: 0 };
    let server = start(c, ApiKeys::none());
    let a = server.addr();
    let m = [("model", "omni")];

    let page = metrics(a);
    assert_eq!(page.types["omnifuse_stage_duration_seconds"], "histogram");
    assert_eq!(page.value("omnifuse_scale_out", &m), Some(0.0));
    assert_eq!(page.value("omnifuse_modality_drift_psi", &m), None, "no drift before the baseline is complete");

    for _ in 0..6 {
        assert_eq!(post(a, "/v1/infer", TEXT).status, 200);
    }
    let page = metrics(a);
    let psi = page.value("omnifuse_modality_drift_psi", &m).unwrap();
    assert!(psi.abs() < 0.1, "the baseline's own traffic does not drift: {psi}");
    assert_eq!(page.value("omnifuse_image_request_share", &m), Some(0.0));
    assert_eq!(page.value("omnifuse_scale_out", &m), Some(0.0));
    assert_eq!(page.value("omnifuse_cross_modal_alignment", &m), None, "text-only requests have no alignment");
    assert_eq!(page.value("omnifuse_requests_by_mix_total", &[("mix", "text"), ("status", "200")]), Some(6.0));
    for stage in ["preprocess", "encode", "fuse", "heads"] {
        let count = page.value("omnifuse_stage_duration_seconds_count", &[("stage", stage)]);
        assert_eq!(count, Some(6.0), "{stage}");
    }
    let (p50, p99) = (page.value("omnifuse_latency_p50_seconds", &m), page.value("omnifuse_latency_p99_seconds", &m));
    assert!(p50.unwrap() > 0.0 && p99.unwrap() >= p50.unwrap(), "{p50:?} {p99:?}");

    let image = json!({
        "inputs": [{"text": "a red square"}, {"image": b64(&png(24, 24))}],
        "parameters": {"task_type": "retrieval"}
    })
    .to_string();
    for _ in 0..6 {
        let r = post(a, "/v1/infer", &image);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(post(a, "/v1/infer", r#"{"inputs":[{"image":"iVBORw0KGgoAAAA="}]}"#).status, 422);
    let page = metrics(a);
    let psi = page.value("omnifuse_modality_drift_psi", &m).unwrap();
    assert!(psi > 0.25, "image-heavy traffic after a text-only baseline drifts: {psi}");
    assert_eq!(page.value("omnifuse_image_request_share", &m), Some(1.0));
    assert_eq!(page.value("omnifuse_scale_out", &m), Some(1.0));
    let alignment = page.value("omnifuse_cross_modal_alignment", &m).unwrap();
    assert!((-1.0..=1.0).contains(&alignment) && alignment != 0.0, "{alignment}");
    assert_eq!(page.value("omnifuse_cross_modal_alignment_requests", &m), Some(6.0));
    assert_eq!(page.value("omnifuse_requests_by_mix_total", &[("mix", "text+image"), ("status", "200")]), Some(6.0));
    assert_eq!(page.value("omnifuse_requests_by_mix_total", &[("mix", "unknown"), ("status", "422")]), Some(1.0));

    for _ in 0..6 {
        assert_eq!(post(a, "/v1/infer", TEXT).status, 200);
    }
    let page = metrics(a);
    assert_eq!(page.value("omnifuse_scale_out", &m), Some(0.0), "text traffic clears the signal");
    assert!(page.value("omnifuse_modality_drift_psi", &m).unwrap() < 0.1);
}

#[test]
fn device_and_process_memory_are_exported() {
    let server = start(config(), ApiKeys::none());
    let a = server.addr();
    assert_eq!(post(a, "/v1/infer", TEXT).status, 200);
    let page = metrics(a);
    assert_eq!(page.types["omnifuse_device_memory_bytes"], "gauge");
    let device = page.value("omnifuse_device_memory_bytes", &[("model", "omni"), ("backend", "cpu")]).unwrap();
    let weights = model().parameters() as f64 * 4.0;
    assert!(device >= weights, "the CPU backend holds at least the f32 weights ({weights} bytes): {device}");
    let rss = page.value("process_resident_memory_bytes", &[]).unwrap();
    assert!(rss >= device, "the process holds its device buffers (CPU memory): rss {rss}, device {device}");
}

#[test]
fn the_feature_cache_counts_hits_and_misses() {
    let cfg = config();
    let mut m = model();
    m.set_feature_cache(32 << 20);
    let models = omnifuse_http::serve_models(&cfg, vec![("omni".to_string(), m)]).unwrap();
    let server = omnifuse_http::spawn(cfg, models, ApiKeys::none()).unwrap();
    let a = server.addr();
    // The same text twice: a miss, then a hit (warm-up requests may add their own lookups).
    let before = metrics(a);
    let hits0 = before.value("omnifuse_feature_cache_hits_total", &[("model", "omni")]).unwrap();
    let misses0 = before.value("omnifuse_feature_cache_misses_total", &[("model", "omni")]).unwrap();
    let body = r#"{"inputs":[{"text":"a text only this test sends"}],"parameters":{"task_type":"classification"}}"#;
    assert_eq!(post(a, "/v1/infer", body).status, 200);
    assert_eq!(post(a, "/v1/infer", body).status, 200);
    let page = metrics(a);
    assert_eq!(page.types["omnifuse_feature_cache_hits_total"], "counter");
    assert_eq!(page.value("omnifuse_feature_cache_hits_total", &[("model", "omni")]), Some(hits0 + 1.0));
    assert_eq!(page.value("omnifuse_feature_cache_misses_total", &[("model", "omni")]), Some(misses0 + 1.0));
    let bytes = page.value("omnifuse_feature_cache_bytes", &[("model", "omni")]).unwrap();
    assert!(bytes > 0.0 && bytes <= (32 << 20) as f64, "{bytes}");
    // Without a cache the families are absent.
    let plain = start(config(), ApiKeys::none());
    assert!(metrics(plain.addr()).value("omnifuse_feature_cache_hits_total", &[("model", "omni")]).is_none());
}
