//! Two runs side by side: the main figures of two `--json` reports with the ratio B/A, so a
//! change (batching on vs off, fp32 vs int8, one build vs another) reads off one table.

use serde_json::Value;

/// The figures compared: label and JSON pointer.
const FIGURES: &[(&str, &str)] = &[
    ("qps", "/qps"),
    ("target qps", "/target_qps"),
    ("samples/s", "/samples_per_s"),
    ("queries", "/queries"),
    ("duration (s)", "/duration_s"),
    ("latency p50 (ms)", "/latency_ms/p50"),
    ("latency p90 (ms)", "/latency_ms/p90"),
    ("latency p95 (ms)", "/latency_ms/p95"),
    ("latency p99 (ms)", "/latency_ms/p99"),
    ("latency p99.9 (ms)", "/latency_ms/p999"),
    ("latency mean (ms)", "/latency_ms/mean"),
    ("latency max (ms)", "/latency_ms/max"),
    ("failed", "/failed"),
    ("offline gain", "/offline/gain"),
    ("peak qps", "/find_peak/peak_qps"),
];

/// Settings shown for context (no ratio).
const SETTINGS: &[(&str, &str)] = &[
    ("scenario", "/scenario"),
    ("model", "/model"),
    ("backend", "/backend"),
    ("precision", "/precision"),
    ("batching", "/batching"),
    ("grouping", "/grouping"),
    ("workload", "/workload"),
    ("valid", "/valid"),
    ("cpu", "/machine/cpu"),
];

fn shown(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.as_f64().map_or(n.to_string(), |x| {
            if x == x.round() && x.abs() < 1e15 { format!("{x:.0}") } else { format!("{x:.3}") }
        }),
        Some(other) => other.to_string(),
    }
}

/// Rows of the comparison (header first): figure, A, B, B/A.
pub fn rows(a: &Value, b: &Value) -> Result<Vec<[String; 4]>, String> {
    for (name, v) in [("A", a), ("B", b)] {
        if !v.is_object() || v.get("scenario").is_none() {
            return Err(format!("report {name} is not an `omnifuse bench --json` report (no \"scenario\" key)"));
        }
    }
    let mut out = vec![["".to_string(), "A".into(), "B".into(), "B/A".into()]];
    for (label, ptr) in SETTINGS {
        out.push([label.to_string(), shown(a.pointer(ptr)), shown(b.pointer(ptr)), String::new()]);
    }
    for (label, ptr) in FIGURES {
        let (x, y) = (a.pointer(ptr), b.pointer(ptr));
        if x.is_none_or(Value::is_null) && y.is_none_or(Value::is_null) {
            continue;
        }
        let ratio = match (x.and_then(Value::as_f64), y.and_then(Value::as_f64)) {
            (Some(x), Some(y)) if x != 0.0 => format!("{:.3}×", y / x),
            _ => "-".into(),
        };
        out.push([label.to_string(), shown(x), shown(y), ratio]);
    }
    Ok(out)
}

/// Read a report file.
pub fn load(path: &std::path::Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{}: not JSON ({e}): expected an `omnifuse bench --json` report", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ratios_are_b_over_a_and_missing_figures_are_dashes() {
        let a = json!({"scenario": "server", "qps": 10.0, "latency_ms": {"p99": 100.0}, "batching": false, "target_qps": null});
        let b = json!({"scenario": "server", "qps": 25.0, "latency_ms": {"p99": 50.0}, "batching": true});
        let r = rows(&a, &b).unwrap();
        let find = |k: &str| r.iter().find(|x| x[0] == k).cloned().unwrap();
        assert_eq!(find("qps"), ["qps".to_string(), "10".into(), "25".into(), "2.500×".into()]);
        assert_eq!(find("latency p99 (ms)")[3], "0.500×");
        assert_eq!(find("batching")[1..3], ["false".to_string(), "true".into()]);
        assert!(!r.iter().any(|x| x[0] == "target qps"), "absent in both: not shown");
        assert!(rows(&json!([1]), &b).unwrap_err().contains("report A"));
    }
}
