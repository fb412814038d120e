//! The omni-modal model of omnifuse (see `MODEL.md` beside this crate for its exact
//! definition): a modal detector and router, per-modality preprocessing, light encoders
//! projecting into one width, a cross-modal fusion transformer, and task heads — built as
//! graphs on the runtime of `omnifuse-core`, so any backend runs it without model code
//! changing.

pub mod bert;
pub mod builder;
pub mod cache;
pub mod calibrate;
pub mod config;
pub mod encoders;
pub mod error;
pub mod fusion;
pub mod generate;
pub mod heads;
pub mod index;
pub mod input;
pub mod model;
pub mod output;
pub mod precision;
pub mod probe;
pub mod request;
pub mod sentence;
pub mod smooth;
pub mod st_import;
pub mod weights;

pub use config::Config;
pub use error::{Error, Result};
pub use model::Model;
pub use precision::Precision;
