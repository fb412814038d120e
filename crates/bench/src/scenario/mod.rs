//! The scenarios, as MLPerf LoadGen defines them: [`single_stream`] (one query at a time;
//! P90 latency), [`multi_stream`] (N samples per query, the next query when the last one is
//! answered; P99), [`server`] (Poisson arrivals at a target QPS, latency from the scheduled
//! send time; P99 against a bound) and [`crate::offline`] (everything at once; samples/s).

pub mod multi_stream;
pub mod server;
pub mod single_stream;

use crate::latency::LiveView;

/// How long a scenario runs and how its queries are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Run at least this many seconds.
    pub duration_s: f64,
    /// And at least this many queries.
    pub min_queries: usize,
    /// Seed of the arrival schedule and of which request each query sends.
    pub seed: u64,
}

/// Called as queries are answered, for a progress display.
pub type Progress<'a> = &'a (dyn Fn(&LiveView) + Sync);
