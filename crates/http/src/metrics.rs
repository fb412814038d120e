//! `GET /metrics` in the Prometheus text format: requests by route and status, request latency
//! histograms by route, and per model the queue depth, the batch-size histogram and the
//! requests run — counted by a middleware around every route.

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
    state.metrics.record(&method, &route, response.status().as_u16(), start.elapsed().as_secs_f64());
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
    s
}
