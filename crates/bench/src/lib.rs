//! The omnifuse benchmark harness: seeded omni-modal workloads ([`workload`]) and the
//! scenarios that run them against a model ([`offline`]). Today: the offline scenario, with
//! dynamic batching on or off in the same run, so its gain is measured, not claimed; and the
//! accuracy loss of a lower precision against FP32 ([`accuracy`]).

pub mod accuracy;
pub mod offline;
pub mod workload;
