//! The memory families of `GET /metrics`: each model's device memory in use (where its
//! backend counts it), its feature cache's hits, misses and bytes (when the cache is on), and
//! the server process's resident memory (where `/proc` tells it).

use std::fmt::Write as _;

use crate::state::AppState;

/// The server process's resident set size in bytes, from `/proc/self/status`.
pub fn process_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Append the families to `s`; `escape` makes a label value safe.
pub fn render(s: &mut String, state: &AppState, escape: impl Fn(&str) -> String) {
    s.push_str("# HELP omnifuse_device_memory_bytes Bytes of device memory held by the live buffers of a model's backend (weights, caches and a batch's tensors), for backends that count them.\n");
    s.push_str("# TYPE omnifuse_device_memory_bytes gauge\n");
    for m in &state.models {
        if let Some(bytes) = m.model().device_memory_in_use() {
            let (model, backend) = (escape(m.name()), escape(&m.model().backend_name()));
            let _ = writeln!(s, "omnifuse_device_memory_bytes{{model=\"{model}\",backend=\"{backend}\"}} {bytes}");
        }
    }
    let caches: Vec<_> = state.models.iter().filter_map(|m| m.model().feature_cache_stats().map(|c| (m, c))).collect();
    if !caches.is_empty() {
        let families = [
            ("omnifuse_feature_cache_hits_total", "counter", "Encoder outputs found in the feature cache."),
            (
                "omnifuse_feature_cache_misses_total",
                "counter",
                "Encoder outputs looked up and not found (then computed).",
            ),
            ("omnifuse_feature_cache_bytes", "gauge", "Bytes of encoder outputs held by the feature cache."),
            ("omnifuse_feature_cache_capacity_bytes", "gauge", "The feature cache's bound in bytes."),
        ];
        for (i, (name, kind, help)) in families.iter().enumerate() {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (m, c) in &caches {
                let v = [c.hits, c.misses, c.bytes as u64, c.capacity_bytes as u64][i];
                let _ = writeln!(s, "{name}{{model=\"{}\"}} {v}", escape(m.name()));
            }
        }
    }
    if let Some(rss) = process_rss_bytes() {
        s.push_str("# HELP process_resident_memory_bytes Resident memory size of the server process in bytes.\n");
        s.push_str("# TYPE process_resident_memory_bytes gauge\n");
        let _ = writeln!(s, "process_resident_memory_bytes {rss}");
    }
}
