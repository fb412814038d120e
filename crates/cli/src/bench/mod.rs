//! `omnifuse bench`: the benchmark harness from the command line — the four LoadGen
//! scenarios on a seeded omni-modal workload (or a directory of real inputs), the peak-QPS
//! search, accuracy against FP32 in the same run, a summary table, `--json`/`--html` reports
//! and `--compare` of two JSON reports.

mod args;
mod progress;
mod run;
mod summary;

pub use args::Args;
pub use run::run;
