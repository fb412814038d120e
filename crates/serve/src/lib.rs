//! Serving pieces of omnifuse. Today: the dynamic batcher — a bounded queue whose batches close
//! on a token budget, a request count or a maximum queue delay, whichever comes first, with
//! priority levels (FIFO within a level), per-request deadlines (expired requests are answered
//! with a timeout, never run), refusal at admission when full, and optional same-modality
//! grouping (a batch holds requests of one group key, such as a modality mix).
//!
//! The batching decisions live in [`queue::Queue`], a state machine driven by explicit times,
//! so its guarantees are tested deterministically on a virtual clock; [`batcher::Batcher`] runs
//! it on a thread against the real clock and an [`batcher::Executor`].

pub mod batcher;
pub mod policy;
pub mod queue;

pub use batcher::{Batcher, Executor, Outcome, Ticket};
pub use policy::BatchPolicy;
pub use queue::{Admission, Decision, Queue};
