//! Cross-crate end-to-end tests live beside this file (`pipeline.rs`); the binary's own
//! end-to-end tests live with the CLI crate, where Cargo exposes the built executable.
