//! The summary table printed after a run.

use omnifuse_harness::report::Report;

use crate::table::render as table;

fn ms(x: f64) -> String {
    format!("{x:.2} ms")
}

/// The table for `r`.
pub fn render(r: &Report) -> String {
    let l = &r.latency_ms;
    let mut rows = vec![vec!["figure".to_string(), "value".to_string()]];
    let mut add = |k: &str, v: String| rows.push(vec![k.to_string(), v]);
    add("scenario", format!("{} ({} on {}, {})", r.scenario, r.model, r.backend, r.precision));
    add(
        "batching",
        if r.batching {
            format!(
                "on (max batch {}, max delay {} ms, grouping {})",
                r.batch_policy.max_batch,
                r.batch_policy.max_delay_ms,
                if r.grouping { "on" } else { "off" }
            )
        } else {
            "off".into()
        },
    );
    add("workload", format!("{} (pool {}, seed {})", r.workload, r.pool, r.seed));
    add("queries", format!("{} in {:.2} s ({} failed)", r.queries, r.duration_s, r.failed));
    let target = r.target_qps.map_or(String::new(), |t| format!(" (target {t:.2})"));
    add("QPS", format!("{:.2}{target}; {:.2} samples/s", r.qps, r.samples_per_s));
    add("latency P50 / P90 / P95", format!("{} / {} / {}", ms(l.p50), ms(l.p90), ms(l.p95)));
    add("latency P99 / P99.9 / max", format!("{} / {} / {}", ms(l.p99), ms(l.p999), ms(l.max)));
    add("latency mean", ms(l.mean));
    let hist: Vec<String> = r.batch_size_hist.iter().map(|(k, v)| format!("{k}×{v}")).collect();
    add("batch sizes (size×count)", hist.join(" "));
    add("padding ratio", format!("{} (packed, unpadded batches)", r.padding_ratio));
    add("cache hit rate", r.cache_hit_rate.map_or("n/a (not reported)".into(), |h| format!("{:.1}%", h * 100.0)));
    let stages: Vec<String> = r.stages_ms.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
    add("mean ms per stage", stages.join(", "));
    if let Some(o) = &r.offline {
        add(
            "offline samples/s",
            format!(
                "off {:.2}, on {:.2}: gain {:.2}×",
                o["off"]["samples_per_s"].as_f64().unwrap_or(f64::NAN),
                o["on"]["samples_per_s"].as_f64().unwrap_or(f64::NAN),
                o["gain"].as_f64().unwrap_or(f64::NAN)
            ),
        );
    }
    if let Some(p) = &r.find_peak {
        let h = &p["half_peak"];
        add(
            "peak QPS",
            format!(
                "{:.2} ({} probes)",
                p["peak_qps"].as_f64().unwrap_or(f64::NAN),
                p["probes"].as_array().map_or(0, Vec::len)
            ),
        );
        add(
            "at 50% of peak",
            format!(
                "{:.2} QPS achieved, P99 {:.2} ms, {}",
                h["qps"].as_f64().unwrap_or(f64::NAN),
                h["latency_ms"]["p99"].as_f64().unwrap_or(f64::NAN),
                if h["valid"].as_bool() == Some(true) { "valid" } else { "INVALID" }
            ),
        );
    }
    if let Some(a) = &r.accuracy {
        add("accuracy (min quality vs fp32)", format!("{:.2}%", a["min_quality_pct"].as_f64().unwrap_or(f64::NAN)));
    }
    add("machine", r.machine.line());
    add("command", r.command.clone());
    let mut out = table(&rows);
    out.push_str(&format!("\n{}\n", if r.valid { "VALID" } else { "INVALID" }));
    for c in &r.validity {
        out.push_str(&format!("  [{}] {}: {}\n", if c.ok { "pass" } else { "FAIL" }, c.name, c.detail));
    }
    out
}
