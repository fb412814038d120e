//! The omnifuse benchmark harness. Scenarios as MLPerf LoadGen defines them
//! ([`scenario::single_stream`], [`scenario::multi_stream`], [`scenario::server`],
//! [`offline`]) run seeded omni-modal workloads ([`workload`], or real inputs from a directory:
//! [`inputs`]) against a [`target::Target`] — the in-process model, or anything else that
//! answers batches, such as a server over HTTP ([`remote`]) — through the dynamic batcher ([`driver`]). A run ([`record::Run`]) becomes a
//! [`report::Report`] (HdrHistogram latencies, validity verdict with an early-stopping
//! estimate, batch sizes, time per stage, the machine and the command), printed as JSON or as
//! a self-contained HTML page ([`html`]); [`compare`] puts two reports side by side, [`peak`]
//! finds the highest server QPS that meets a latency bound, and [`accuracy`] measures a lower
//! precision against FP32.

pub mod accuracy;
pub mod builtin_set;
pub mod compare;
pub mod driver;
pub mod early_stop;
pub mod fake;
pub mod html;
pub mod inputs;
pub mod latency;
pub mod machine;
pub mod offline;
pub mod peak;
pub mod record;
pub mod remote;
pub mod report;
pub mod scenario;
pub mod schedule;
pub mod svg;
pub mod target;
pub mod validity;
pub mod workload;
