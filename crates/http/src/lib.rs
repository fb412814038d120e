//! The omnifuse HTTP server. Each served model sits behind its own dynamic batcher
//! (`omnifuse-serve`), whose worker thread runs the model; the async handlers only parse,
//! check, submit and await. Routes:
//!
//! - the unified API — `POST /v1/infer` (omnifuse's JSON request format, answered as
//!   `omnifuse run --json` prints), asynchronous jobs (`/v1/jobs`), named retrieval indexes
//!   (`/v1/index/{name}`, `/v1/search`);
//! - the Open Inference Protocol v2 (`/v2/...`: health, metadata, typed-tensor inference,
//!   and Triton's model configuration and statistics extensions);
//! - `GET /metrics` in the Prometheus text format.
//!
//! Every route but the health probes needs an API key (`Authorization: Bearer <key>`) unless
//! authentication is explicitly off; bodies are size-limited; client mistakes get a 4xx with
//! a message saying what was seen and what was expected, as `{"error": "…"}`.

pub mod auth;
pub mod config;
pub mod engine;
pub mod error;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod monitor;
pub mod oip;
pub mod resources;
pub mod retrieval;
pub mod server;
pub mod state;
pub mod stats;
pub mod unified;

pub use auth::ApiKeys;
pub use config::{ConfigError, ServeConfig};
pub use engine::ServedModel;
pub use error::ApiError;
pub use server::{RunningServer, ServeError, run, serve_models, spawn};
