//! The progress bar of a run: elapsed against the planned duration, with live QPS and P99.
//! Hidden when the JSON report goes to standard output.

use indicatif::{ProgressBar, ProgressStyle};
use omnifuse_harness::latency::LiveView;

/// A bar over `seconds` of run time, labelled `label`.
pub fn timed(label: &str, seconds: f64, hidden: bool) -> ProgressBar {
    let bar = if hidden { ProgressBar::hidden() } else { ProgressBar::new((seconds * 1000.0).max(1.0) as u64) };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

/// Show `view` on `bar`.
pub fn show(bar: &ProgressBar, view: &LiveView) {
    bar.set_position((view.elapsed_s * 1000.0) as u64);
    bar.set_message(format!("{} queries, {:.1} QPS, P99 {:.1} ms", view.done, view.qps, view.p99_ms));
}

/// A bar over `n` steps (offline rounds, accuracy requests).
pub fn steps(label: &str, n: usize, unit: &str, hidden: bool) -> ProgressBar {
    let bar = if hidden { ProgressBar::hidden() } else { ProgressBar::new(n as u64) };
    bar.set_style(
        ProgressStyle::with_template(&format!("{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{elapsed}})"))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}
