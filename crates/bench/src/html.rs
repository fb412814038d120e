//! The self-contained HTML report: the summary, the validity checks, time per stage, the
//! machine and the exact command, and four inline SVG plots — latency histogram, latency CDF,
//! latency over the run (by scheduled send time) and the batch-size histogram. No script and
//! no external resource: the file opens anywhere.

use std::fmt::Write;

use crate::record::Run;
use crate::report::Report;
use crate::svg::{bars, escape, line, scatter};

/// Most points drawn in the CDF and the time plot (the rest are evenly thinned out).
const MAX_POINTS: usize = 4000;

fn thin<T: Copy>(v: &[T], max: usize) -> Vec<T> {
    if v.len() <= max {
        return v.to_vec();
    }
    let stride = v.len().div_ceil(max);
    v.iter().step_by(stride).copied().collect()
}

fn histogram(latencies: &[f64]) -> Vec<(String, f64)> {
    let max = latencies.iter().copied().fold(0.0, f64::max);
    if latencies.is_empty() || max <= 0.0 {
        return Vec::new();
    }
    let bins = 30usize;
    let width = max / bins as f64;
    let mut counts = vec![0.0; bins];
    for &l in latencies {
        counts[((l / width) as usize).min(bins - 1)] += 1.0;
    }
    counts.into_iter().enumerate().map(|(i, c)| (format!("{:.0}", (i + 1) as f64 * width), c)).collect()
}

fn row(out: &mut String, k: &str, v: &str) {
    let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
}

/// The page for `report` and its `run`.
pub fn render(report: &Report, run: &Run) -> String {
    let r = report;
    let l = &r.latency_ms;
    let mut s = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(s, "<title>omnifuse bench: {} {}</title>", escape(&r.scenario), escape(&r.model));
    s.push_str(
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}\
         th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}.ok{color:#1a7f37}.bad{color:#c62828}\
         .plots{display:flex;flex-wrap:wrap;gap:16px}svg{background:#fafafa;border:1px solid #ddd}\
         code{background:#f3f3f3;padding:2px 4px}</style>\n</head>\n<body>\n",
    );
    let verdict = if r.valid { "<span class=\"ok\">VALID</span>" } else { "<span class=\"bad\">INVALID</span>" };
    let _ =
        writeln!(s, "<h1>{} — {} on {} — {verdict}</h1>", escape(&r.scenario), escape(&r.model), escape(&r.backend));
    let _ = writeln!(s, "<p>Command: <code>{}</code></p>", escape(&r.command));
    let _ = writeln!(s, "<p>Machine: {}</p>", escape(&r.machine.line()));
    s.push_str("<h2>Summary</h2>\n<table>\n");
    row(&mut s, "precision", &r.precision);
    row(
        &mut s,
        "batching",
        &format!(
            "{} (max batch {}, max delay {} ms, same-modality grouping {})",
            if r.batching { "on" } else { "off" },
            r.batch_policy.max_batch,
            r.batch_policy.max_delay_ms,
            if r.grouping { "on" } else { "off" }
        ),
    );
    row(&mut s, "workload", &format!("{} (pool of {}, seed {})", r.workload, r.pool, r.seed));
    row(&mut s, "queries", &format!("{} ({} per query, {} failed)", r.queries, r.samples_per_query, r.failed));
    row(&mut s, "duration", &format!("{:.2} s", r.duration_s));
    row(
        &mut s,
        "QPS",
        &format!("{:.2} achieved{}", r.qps, r.target_qps.map_or(String::new(), |t| format!(", {t:.2} targeted"))),
    );
    row(&mut s, "samples/s", &format!("{:.2}", r.samples_per_s));
    row(
        &mut s,
        "latency (ms)",
        &format!(
            "P50 {:.2}  P90 {:.2}  P95 {:.2}  P99 {:.2}  P99.9 {:.2}  mean {:.2}  max {:.2}",
            l.p50, l.p90, l.p95, l.p99, l.p999, l.mean, l.max
        ),
    );
    row(&mut s, "padding ratio", &format!("{} (packed batches carry no padding)", r.padding_ratio));
    row(
        &mut s,
        "cache hit rate",
        &r.cache_hit_rate.map_or("not reported by the target".into(), |h| format!("{:.1}%", h * 100.0)),
    );
    s.push_str("</table>\n<h2>Validity</h2>\n<table>\n");
    for c in &r.validity {
        let class = if c.ok { "ok" } else { "bad" };
        let _ = writeln!(
            s,
            "<tr><th>{}</th><td class=\"{class}\">{}</td><td>{}</td></tr>",
            escape(&c.name),
            if c.ok { "pass" } else { "FAIL" },
            escape(&c.detail)
        );
    }
    s.push_str("</table>\n<h2>Time per stage (mean ms per request)</h2>\n<table>\n");
    for (k, v) in &r.stages_ms {
        row(&mut s, k, &format!("{v:.3}"));
    }
    s.push_str("</table>\n");
    if let Some(p) = &r.find_peak {
        let _ = writeln!(
            s,
            "<h2>Peak search</h2>\n<pre>{}</pre>",
            escape(&serde_json::to_string_pretty(p).unwrap_or_default())
        );
    }
    if let Some(o) = &r.offline {
        let _ = writeln!(
            s,
            "<h2>Offline: batching off and on</h2>\n<pre>{}</pre>",
            escape(&serde_json::to_string_pretty(o).unwrap_or_default())
        );
    }
    if let Some(a) = &r.accuracy {
        let _ = writeln!(
            s,
            "<h2>Accuracy against FP32</h2>\n<pre>{}</pre>",
            escape(&serde_json::to_string_pretty(a).unwrap_or_default())
        );
    }
    s.push_str("<h2>Plots</h2>\n<div class=\"plots\">\n");
    s += &bars(
        "latency-histogram",
        "Query latency histogram",
        "latency (ms, bin upper edge)",
        "queries",
        &histogram(&run.query_latencies_ms),
    );
    let mut sorted = run.query_latencies_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len().max(1) as f64;
    let cdf: Vec<(f64, f64)> = sorted.iter().enumerate().map(|(i, &v)| (v, (i + 1) as f64 / n)).collect();
    s += &line("latency-cdf", "Query latency CDF", "latency (ms)", "fraction of queries", &thin(&cdf, MAX_POINTS));
    let over_time: Vec<(f64, f64)> =
        run.samples.iter().filter(|x| x.outcome.is_ok()).map(|x| (x.scheduled_s, x.latency_ms)).collect();
    s += &scatter(
        "latency-over-time",
        "Latency over the run",
        "scheduled send time (s)",
        "latency (ms)",
        &thin(&over_time, MAX_POINTS),
    );
    let batches: Vec<(String, f64)> = r.batch_size_hist.iter().map(|(k, v)| (k.to_string(), *v as f64)).collect();
    s += &bars("batch-sizes", "Batch sizes", "requests per batch", "batches", &batches);
    s.push_str("</div>\n</body>\n</html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Setup, tests::sample_run};
    use crate::validity::Criteria;

    /// Checks that every element opened is closed in order (void and self-closing ones aside).
    fn balanced(html: &str) -> Result<(), String> {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = html;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let end = rest.find('>').ok_or("an unclosed tag")?;
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            if tag.starts_with('!') || tag.ends_with('/') {
                continue;
            }
            let name: String = tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            if name == "meta" {
                continue;
            }
            if tag.starts_with('/') {
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else {
                stack.push(name);
            }
        }
        if stack.is_empty() { Ok(()) } else { Err(format!("left open: {stack:?}")) }
    }

    #[test]
    fn the_page_is_well_formed_and_has_the_four_plots() {
        let setup = Setup { scenario: "server".into(), command: "omnifuse bench <x>".into(), ..Setup::default() };
        let criteria = Criteria { min_duration_s: None, min_queries: 1, quantile: 0.99, latency_bound_ms: Some(1.0) };
        let run = sample_run();
        let report = Report::new(&setup, &run, &criteria);
        let page = render(&report, &run);
        balanced(&page).unwrap();
        assert!(page.starts_with("<!DOCTYPE html>"));
        for class in ["latency-histogram", "latency-cdf", "latency-over-time", "batch-sizes"] {
            assert!(page.contains(&format!("<svg class=\"{class}\"")), "no {class} plot");
        }
        assert_eq!(page.matches("<circle").count(), 50, "one point per answered request");
        assert!(page.contains("INVALID"), "the 1 ms bound fails");
        assert!(page.contains("omnifuse bench &lt;x&gt;"), "the command is escaped");
        assert!(!page.contains("<script"), "no script");
        assert!(balanced("<div><span></div>").is_err());
    }
}
