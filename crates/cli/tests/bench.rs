//! End-to-end tests of `omnifuse bench`: a short run of each scenario on the built-in model
//! (text-only, few queries, so they are quick), the JSON and HTML reports, `--compare`, and
//! clear errors for bad flags.

#![allow(clippy::panic)] // test helpers fail by panicking

use std::path::PathBuf;
use std::process::{Command, Output};

fn omnifuse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_omnifuse")).args(args).output().expect("run omnifuse")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omnifuse-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

const QUICK: &[&str] =
    &["--mix", "text=1", "--queries", "4", "--duration", "0", "--min-queries", "3", "--task", "sentiment"];

fn bench(extra: &[&str]) -> Output {
    let mut args = vec!["bench"];
    args.extend_from_slice(QUICK);
    args.extend_from_slice(extra);
    omnifuse(&args)
}

#[test]
fn every_scenario_reports_json_with_the_required_keys() {
    for scenario in ["single-stream", "multi-stream", "server", "offline"] {
        let o = bench(&["--scenario", scenario, "--rounds", "1", "--samples-per-query", "2", "--qps", "50", "--json"]);
        let out = text(&o.stdout);
        let v: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{scenario}: not JSON ({e}): {out}{}", text(&o.stderr)));
        for key in [
            "scenario",
            "backend",
            "precision",
            "batching",
            "queries",
            "duration_s",
            "qps",
            "target_qps",
            "latency_ms",
            "valid",
            "validity",
            "batch_size_hist",
            "accuracy",
            "command",
            "machine",
        ] {
            assert!(v.get(key).is_some(), "{scenario}: no {key} in {out}");
        }
        assert_eq!(v["scenario"], scenario);
        assert!(v["queries"].as_u64().unwrap_or(0) >= 3, "{scenario}: {out}");
        assert!(v["command"].as_str().unwrap_or("").contains(scenario));
        assert_eq!(v["failed"], 0, "{scenario}: {out}");
    }
}

#[test]
fn the_feature_cache_hit_rate_is_reported() {
    // Four distinct requests drawn for at least twelve queries: most inputs repeat.
    let args = ["bench", "--mix", "text=1", "--queries", "4", "--duration", "0", "--min-queries", "12"];
    let o = omnifuse(
        &[&args[..], &["--task", "sentiment", "--scenario", "single-stream", "--feature-cache-mb", "64", "--json"]]
            .concat(),
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o.stderr)));
    let rate = v["cache_hit_rate"].as_f64().unwrap_or_else(|| panic!("no hit rate: {v}"));
    assert!(rate > 0.5 && rate < 1.0, "{rate}: {v}");
    // Without a cache there is no rate.
    let o = bench(&["--scenario", "single-stream", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o.stderr)));
    assert!(v["cache_hit_rate"].is_null(), "{v}");
}

#[test]
fn files_html_and_compare() {
    let (a, b, h) = (scratch("a.json"), scratch("b.json"), scratch("r.html"));
    let s = |p: &PathBuf| p.to_string_lossy().into_owned();
    let o = bench(&["--scenario", "server", "--qps", "40", "--batching", "off", "--json", &s(&a), "--html", &s(&h)]);
    assert!(text(&o.stdout).contains("latency P99"), "the summary table: {}", text(&o.stdout));
    let o = bench(&["--scenario", "server", "--qps", "40", "--json", &s(&b)]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", text(&o.stderr));
    let page = std::fs::read_to_string(&h).expect("the HTML report");
    for class in ["latency-histogram", "latency-cdf", "latency-over-time", "batch-sizes"] {
        assert!(page.contains(class), "no {class} plot");
    }
    let o = omnifuse(&["bench", "--compare", &s(&a), &s(&b)]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(out.contains("B/A") && out.contains("latency p99 (ms)") && out.contains('×'), "{out}");
    let o = omnifuse(&["bench", "--compare", &s(&h), &s(&b)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("not JSON"), "{}", text(&o.stderr));
}

#[test]
fn bad_flags_are_named() {
    for (args, want) in [
        (&["bench", "--scenario", "server", "--qps", "0"][..], "--qps 0"),
        (&["bench", "--scenario", "offline", "--find-peak"][..], "--find-peak"),
        (&["bench", "--mix", "smell=1"][..], "smell"),
        (&["bench", "--inputs", "/nonexistent-omnifuse-dir"][..], "nonexistent-omnifuse-dir"),
        (&["bench", "--precision", "fp8"][..], "fp8"),
    ] {
        let o = omnifuse(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains(want), "{args:?}: {}", text(&o.stderr));
    }
}
