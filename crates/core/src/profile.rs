//! An opt-in per-op profile: when enabled (`OMNIFUSE_PROFILE=1` in the environment, or
//! [`enable`]), [`crate::exec::launch_in_order`] times every launch and adds it to a
//! process-wide table keyed by op name; [`report`] renders the table, slowest op first.
//! Launches are timed on the host, so the figures are exact for synchronous backends (CPU)
//! and launch overhead only for asynchronous ones. Disabled, the cost is one relaxed load.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// 0 = not yet read from the environment, 1 = off, 2 = on.
static STATE: AtomicU8 = AtomicU8::new(0);

fn table() -> &'static Mutex<HashMap<&'static str, (u64, Duration)>> {
    static TABLE: OnceLock<Mutex<HashMap<&'static str, (u64, Duration)>>> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Whether launches are being timed.
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var("OMNIFUSE_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0");
            STATE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        s => s == 2,
    }
}

/// Turn timing on from now on.
pub fn enable() {
    STATE.store(2, Ordering::Relaxed);
}

/// Add one launch of `op` that took `took`.
pub fn record(op: &'static str, took: Duration) {
    if let Ok(mut t) = table().lock() {
        let e = t.entry(op).or_insert((0, Duration::ZERO));
        e.0 += 1;
        e.1 += took;
    }
}

/// The table so far: (op, launches, total time), slowest first.
pub fn snapshot() -> Vec<(&'static str, u64, Duration)> {
    let mut rows: Vec<_> = table().lock().map(|t| t.iter().map(|(k, v)| (*k, v.0, v.1)).collect()).unwrap_or_default();
    rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
    rows
}

/// Forget everything recorded.
pub fn reset() {
    if let Ok(mut t) = table().lock() {
        t.clear();
    }
}

/// The table as text: op, launches, total ms, share of the total, µs per launch.
pub fn report() -> String {
    let rows = snapshot();
    let total: Duration = rows.iter().map(|r| r.2).sum();
    let mut s = format!("{:<16} {:>9} {:>11} {:>7} {:>12}\n", "op", "launches", "total ms", "share", "µs/launch");
    for (op, n, t) in rows {
        let share = if total.is_zero() { 0.0 } else { 100.0 * t.as_secs_f64() / total.as_secs_f64() };
        let per = t.as_secs_f64() * 1e6 / n.max(1) as f64;
        let _ = writeln!(s, "{op:<16} {n:>9} {:>11.2} {share:>6.1}% {per:>12.1}", t.as_secs_f64() * 1e3);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_add_up_and_sort_slowest_first() {
        record("profile_test_a", Duration::from_millis(1));
        record("profile_test_b", Duration::from_millis(5));
        record("profile_test_a", Duration::from_millis(2));
        let rows = snapshot();
        let a = rows.iter().find(|r| r.0 == "profile_test_a").map(|r| (r.1, r.2));
        assert_eq!(a, Some((2, Duration::from_millis(3))));
        let pos = |name| rows.iter().position(|r| r.0 == name);
        assert!(pos("profile_test_b") < pos("profile_test_a"));
        assert!(report().contains("profile_test_b"));
    }
}
