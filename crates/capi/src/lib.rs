//! The C ABI of omnifuse, so other inference servers can link omnifuse as their backend
//! (`include/omnifuse.h`, generated from this crate by cbindgen; `docs/c-abi.md` is the
//! guide).
//!
//! Rules every entry point follows:
//! - Objects are opaque handles (`omnifuse_engine`, `omnifuse_request`, `omnifuse_job`,
//!   `omnifuse_result`) created by `*_create` / `omnifuse_submit` / `omnifuse_infer` and freed
//!   by the matching `*_destroy`; every handle carries a type tag, so NULL, a handle of another
//!   type or (usually) a destroyed one is refused with `OMNIFUSE_STATUS_INVALID_ARGUMENT`.
//! - Every call returns an `omnifuse_status`; on failure `omnifuse_last_error()` gives the
//!   calling thread's message (valid until that thread's next omnifuse call).
//! - No panic crosses the boundary: one is caught and becomes `OMNIFUSE_STATUS_PANIC`.
//! - Pointers returned by a handle (JSON, head outputs, names) are owned by that handle and
//!   valid until it is destroyed; inputs are copied during the call that receives them.
//! - Engines are thread-safe; all inference goes through one dynamic batcher per engine.

pub mod engine;
pub mod handle;
pub mod info;
pub mod job;
pub mod kernels;
pub mod request;
pub mod result;
pub mod settings;
pub mod status;
pub mod text;
pub mod work;
