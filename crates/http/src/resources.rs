//! The memory families of `GET /metrics`: each model's device memory in use (where its
//! backend counts it) and the server process's resident memory (where `/proc` tells it).

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
    if let Some(rss) = process_rss_bytes() {
        s.push_str("# HELP process_resident_memory_bytes Resident memory size of the server process in bytes.\n");
        s.push_str("# TYPE process_resident_memory_bytes gauge\n");
        let _ = writeln!(s, "process_resident_memory_bytes {rss}");
    }
}
