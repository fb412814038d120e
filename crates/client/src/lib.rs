//! A blocking Rust client for the omnifuse HTTP server (`omnifuse serve`): one-shot
//! inference (`POST /v1/infer`), asynchronous jobs (`/v1/jobs`) with a handle to poll, wait
//! for or cancel, the health probes, and the retrieval index and search calls.
//!
//! ```no_run
//! use omnifuse_client::{Input, Parameters, UnifiedModelClient};
//!
//! let client = UnifiedModelClient::new("http://127.0.0.1:8080", Some("my-key"))?;
//! let params = Parameters::default().task("sentiment");
//! let answer = client.infer(&[Input::text("a calm sea at dawn")], &params)?;
//! println!("{:?}", answer.heads["sentiment"]);
//! # Ok::<(), omnifuse_client::ClientError>(())
//! ```
//!
//! Calls block the calling thread; a client is cheap to clone and its clones share one
//! connection pool, so a benchmark may call it from many threads. Every failure is a
//! [`ClientError`]: an HTTP error carries the status and the server's own message.

pub mod client;
pub mod error;
pub mod input;
pub mod job;
pub mod params;
pub mod response;

pub use client::UnifiedModelClient;
pub use error::{ClientError, Result};
pub use input::Input;
pub use job::{Job, JobState};
pub use params::Parameters;
pub use response::{HeadResult, InputSummary, Match, Response, SearchResult, Timing};
