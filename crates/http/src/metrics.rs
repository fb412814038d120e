//! `GET /metrics` in the Prometheus text format: requests by route and status, request latency
//! histograms by route — counted by a middleware around every route — and per model the queue
//! depth, the batch-size histogram, the requests run, and its traffic monitor's numbers
//! (requests by modality mix, stage times, P50/P99, drift, alignment, scale-out; see `monitor`),
//! then device and process memory (see `resources`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Upper bounds of the batch-size buckets.
const BATCH_BUCKETS: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

#[derive(Default)]
struct Latency {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Counters {
    /// (method, route, status) → requests.
    requests: BTreeMap<(String, String, u16), u64>,
    /// route → latency.
    latency: BTreeMap<String, Latency>,
}

/// The request counters.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Counters> {
        // Updates are a few additions: a poisoned lock still holds usable counters.
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count one request.
    pub fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut c = self.lock();
        *c.requests.entry((method.to_string(), route.to_string(), status)).or_default() += 1;
        let l = c.latency.entry(route.to_string()).or_default();
        for (b, &le) in l.buckets.iter_mut().zip(&LATENCY_BUCKETS) {
            if seconds <= le {
                *b += 1;
            }
        }
        l.count += 1;
        l.sum += seconds;
    }
}

/// The middleware: times every request and counts it by route (the route's pattern, so ids
/// do not multiply the series) and status.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = method_label(request.method()).to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    let (status, seconds) = (response.status().as_u16(), start.elapsed().as_secs_f64());
    state.metrics.record(&method, &route, status, seconds);
    tracing::debug!(method = %method, route = %route, status, ms = seconds * 1000.0, "request");
    response
}

/// The method as a label: the standard ones by name, any other as `other`, so clients cannot
/// multiply the series.
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// `GET /metrics`.
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text(&state))
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The metrics page.
pub fn text(state: &AppState) -> String {
    let mut s = String::new();
    {
        let c = state.metrics.lock();
        s.push_str("# HELP omnifuse_http_requests_total HTTP requests answered, by method, route and status.\n");
        s.push_str("# TYPE omnifuse_http_requests_total counter\n");
        for ((method, route, status), n) in &c.requests {
            let _ = writeln!(
                s,
                "omnifuse_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        s.push_str("# HELP omnifuse_http_request_duration_seconds Time to answer an HTTP request, by route.\n");
        s.push_str("# TYPE omnifuse_http_request_duration_seconds histogram\n");
        for (route, l) in &c.latency {
            let r = escape(route);
            for (le, n) in LATENCY_BUCKETS.iter().zip(&l.buckets) {
                let _ = writeln!(s, "omnifuse_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{le}\"}} {n}");
            }
            let _ =
                writeln!(s, "omnifuse_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}", l.count);
            let _ = writeln!(s, "omnifuse_http_request_duration_seconds_sum{{route=\"{r}\"}} {}", l.sum);
            let _ = writeln!(s, "omnifuse_http_request_duration_seconds_count{{route=\"{r}\"}} {}", l.count);
        }
    }
    s.push_str("# HELP omnifuse_queue_depth Requests waiting in a model's batching queue.\n");
    s.push_str("# TYPE omnifuse_queue_depth gauge\n");
    for m in &state.models {
        let _ = writeln!(s, "omnifuse_queue_depth{{model=\"{}\"}} {}", escape(m.name()), m.waiting());
    }
    let snaps: Vec<_> = state.models.iter().map(|m| (escape(m.name()), m.stats().snapshot())).collect();
    s.push_str("# HELP omnifuse_batch_size Requests per batch run by a model.\n");
    s.push_str("# TYPE omnifuse_batch_size histogram\n");
    for (name, snap) in &snaps {
        let mut total = 0u64;
        for le in BATCH_BUCKETS {
            let n: u64 = snap.batches.iter().filter(|(size, _)| **size <= le).map(|(_, d)| d.count).sum();
            let _ = writeln!(s, "omnifuse_batch_size_bucket{{model=\"{name}\",le=\"{le}\"}} {n}");
        }
        let mut sum = 0u64;
        for (size, d) in &snap.batches {
            total += d.count;
            sum += *size as u64 * d.count;
        }
        let _ = writeln!(s, "omnifuse_batch_size_bucket{{model=\"{name}\",le=\"+Inf\"}} {total}");
        let _ = writeln!(s, "omnifuse_batch_size_sum{{model=\"{name}\"}} {sum}");
        let _ = writeln!(s, "omnifuse_batch_size_count{{model=\"{name}\"}} {total}");
    }
    s.push_str("# HELP omnifuse_inferences_total Requests a model has run.\n");
    s.push_str("# TYPE omnifuse_inferences_total counter\n");
    for (name, snap) in &snaps {
        let _ = writeln!(s, "omnifuse_inferences_total{{model=\"{name}\"}} {}", snap.inference_count);
    }
    s.push_str("# HELP omnifuse_refused_total Requests refused because a model's queue was full.\n");
    s.push_str("# TYPE omnifuse_refused_total counter\n");
    for (name, snap) in &snaps {
        let _ = writeln!(s, "omnifuse_refused_total{{model=\"{name}\"}} {}", snap.refused);
    }
    monitoring(&mut s, state);
    crate::resources::render(&mut s, state, escape);
    s
}

/// A gauge family: one sample per model that has a value.
fn gauge(s: &mut String, name: &str, help: &str, values: &[(String, Option<f64>)]) {
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (model, v) in values {
        if let Some(v) = v {
            let _ = writeln!(s, "{name}{{model=\"{model}\"}} {v}");
        }
    }
}

/// The traffic monitors' families.
fn monitoring(s: &mut String, state: &AppState) {
    let snaps: Vec<(String, crate::monitor::Snapshot)> =
        state.models.iter().map(|m| (escape(m.name()), m.monitor().snapshot())).collect();
    s.push_str("# HELP omnifuse_requests_by_mix_total Requests submitted to a model, by modality mix and HTTP status (mix \"unknown\": refused or failed before the model answered; requests rejected while parsing are only in omnifuse_http_requests_total).\n");
    s.push_str("# TYPE omnifuse_requests_by_mix_total counter\n");
    for (model, snap) in &snaps {
        for ((mix, status), n) in &snap.requests {
            let mix = escape(mix);
            let _ = writeln!(
                s,
                "omnifuse_requests_by_mix_total{{model=\"{model}\",mix=\"{mix}\",status=\"{status}\"}} {n}"
            );
        }
    }
    s.push_str("# HELP omnifuse_stage_duration_seconds Model time per stage of a request (encode and heads summed over modalities and heads).\n");
    s.push_str("# TYPE omnifuse_stage_duration_seconds histogram\n");
    for (model, snap) in &snaps {
        for (stage, h) in &snap.stages {
            let labels = format!("model=\"{model}\",stage=\"{stage}\"");
            for (le, n) in crate::monitor::STAGE_BUCKETS.iter().zip(&h.buckets) {
                let _ = writeln!(s, "omnifuse_stage_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}");
            }
            let _ = writeln!(s, "omnifuse_stage_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(s, "omnifuse_stage_duration_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(s, "omnifuse_stage_duration_seconds_count{{{labels}}} {}", h.count);
        }
    }
    let per = |f: &dyn Fn(&crate::monitor::Snapshot) -> Option<f64>| -> Vec<(String, Option<f64>)> {
        snaps.iter().map(|(m, snap)| (m.clone(), f(snap))).collect()
    };
    gauge(
        s,
        "omnifuse_window_requests",
        "Answered requests in the monitoring window.",
        &per(&|x| Some(x.window as f64)),
    );
    gauge(s, "omnifuse_latency_p50_seconds", "Median end-to-end latency over the monitoring window.", &per(&|x| x.p50));
    gauge(
        s,
        "omnifuse_latency_p99_seconds",
        "99th-percentile end-to-end latency over the monitoring window.",
        &per(&|x| x.p99),
    );
    gauge(
        s,
        "omnifuse_modality_drift_psi",
        "Population stability index of the window's modality mixes against the baseline (the first monitoring.baseline_requests answered requests); absent until the baseline is complete.",
        &per(&|x| x.psi),
    );
    gauge(
        s,
        "omnifuse_cross_modal_alignment",
        "Mean cosine between the retrieval embeddings of a request's inputs of different modalities, over the window's requests with two or more modalities.",
        &per(&|x| x.alignment),
    );
    gauge(
        s,
        "omnifuse_cross_modal_alignment_requests",
        "Requests in the monitoring window with a cross-modal alignment.",
        &per(&|x| Some(x.alignment_samples as f64)),
    );
    gauge(
        s,
        "omnifuse_image_request_share",
        "Share of image-bearing requests in the monitoring window.",
        &per(&|x| x.image_share),
    );
    gauge(
        s,
        "omnifuse_scale_out",
        "1 while image-bearing requests have exceeded monitoring.scale_out_image_share of the window for monitoring.scale_out_after_s seconds.",
        &per(&|x| Some(if x.scale_out { 1.0 } else { 0.0 })),
    );
}
