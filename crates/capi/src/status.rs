//! Status codes of every entry point, the per-thread last-error message, and [`guard`], the
//! wrapper every entry point runs its body in: it turns a Rust error into a status plus a
//! message and a panic into `OMNIFUSE_STATUS_PANIC`, so nothing unwinds across the boundary.

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What a call returned: `OMNIFUSE_STATUS_OK` (0) or an error code. On an error,
/// `omnifuse_last_error()` on the same thread says what was seen and what was expected.
/// Codes are only ever added, never renumbered.
#[allow(non_camel_case_types)]
pub type omnifuse_status = i32;

/// Success.
pub const OMNIFUSE_STATUS_OK: omnifuse_status = 0;
/// A NULL pointer, an invalid or destroyed handle, or an argument out of its domain.
pub const OMNIFUSE_STATUS_INVALID_ARGUMENT: omnifuse_status = 1;
/// The request, the model or its configuration is unusable (a corrupt PNG, an unknown task,
/// a limit exceeded, weights of the wrong shape).
pub const OMNIFUSE_STATUS_BAD_INPUT: omnifuse_status = 2;
/// Asked for something this build or device does not provide (a precision other than fp32,
/// an op and dtype the backend does not run, a device that is absent).
pub const OMNIFUSE_STATUS_UNSUPPORTED: omnifuse_status = 3;
/// The device or the runtime failed while running.
pub const OMNIFUSE_STATUS_DEVICE_ERROR: omnifuse_status = 4;
/// The engine's queue is full; the request was not admitted (retry later).
pub const OMNIFUSE_STATUS_OVERLOADED: omnifuse_status = 5;
/// The job has not finished yet (from `omnifuse_job_poll` and a timed-out `omnifuse_job_wait`).
pub const OMNIFUSE_STATUS_PENDING: omnifuse_status = 6;
/// The job was cancelled before it started; it never ran.
pub const OMNIFUSE_STATUS_CANCELLED: omnifuse_status = 7;
/// The job had already started (or finished) when it was cancelled; it runs to its end.
pub const OMNIFUSE_STATUS_TOO_LATE: omnifuse_status = 8;
/// A head name, head index or input index that the result or model does not have, or a head
/// that has no output of the asked type.
pub const OMNIFUSE_STATUS_NOT_FOUND: omnifuse_status = 9;
/// A file could not be read.
pub const OMNIFUSE_STATUS_IO_ERROR: omnifuse_status = 10;
/// A bug inside omnifuse (a broken internal contract); the message says which.
pub const OMNIFUSE_STATUS_INTERNAL: omnifuse_status = 11;
/// A panic inside omnifuse was caught at the boundary; the message holds its text.
pub const OMNIFUSE_STATUS_PANIC: omnifuse_status = 12;

/// An error on its way to the caller: a status code and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The status code (never `OMNIFUSE_STATUS_OK`).
    pub status: omnifuse_status,
    /// What was seen and what was expected.
    pub message: String,
}

/// Result of an entry point's body.
pub type Outcome<T = ()> = Result<T, Failure>;

impl Failure {
    /// A failure with `status` and `message`.
    pub fn new(status: omnifuse_status, message: impl Into<String>) -> Self {
        Failure { status, message: message.into() }
    }

    /// `OMNIFUSE_STATUS_INVALID_ARGUMENT` with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Failure::new(OMNIFUSE_STATUS_INVALID_ARGUMENT, message)
    }

    /// `OMNIFUSE_STATUS_NOT_FOUND` with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Failure::new(OMNIFUSE_STATUS_NOT_FOUND, message)
    }
}

impl From<omnifuse_core::Error> for Failure {
    fn from(e: omnifuse_core::Error) -> Self {
        use omnifuse_core::Error as E;
        let status = match &e {
            E::Shape { .. } | E::DType { .. } | E::InvalidArgument(_) => OMNIFUSE_STATUS_INVALID_ARGUMENT,
            E::Unsupported { .. } | E::DeviceUnavailable { .. } => OMNIFUSE_STATUS_UNSUPPORTED,
            _ => OMNIFUSE_STATUS_DEVICE_ERROR,
        };
        Failure::new(status, e.to_string())
    }
}

impl From<omnifuse_model::Error> for Failure {
    fn from(e: omnifuse_model::Error) -> Self {
        use omnifuse_model::Error as E;
        match e {
            E::Runtime(inner) => inner.into(),
            E::Io { .. } => Failure::new(OMNIFUSE_STATUS_IO_ERROR, e.to_string()),
            other => Failure::new(OMNIFUSE_STATUS_BAD_INPUT, other.to_string()),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Store `message` as this thread's last error (interior NULs become spaces).
pub fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = text);
}

/// Clear this thread's last error.
pub fn clear_last_error() {
    LAST_ERROR.with(|slot| *slot.borrow_mut() = CString::default());
}

/// The message of the last failed call on the calling thread, or "" when the last call on
/// this thread succeeded. Never NULL. The string is owned by the library and stays valid
/// until the next omnifuse call on the same thread; copy it to keep it.
#[unsafe(no_mangle)]
pub extern "C" fn omnifuse_last_error() -> *const c_char {
    // Reading the slot cannot panic, but stay inside the rule: nothing unwinds out.
    catch_unwind(|| LAST_ERROR.with(|slot| slot.borrow().as_ptr())).unwrap_or(c"panic in omnifuse_last_error".as_ptr())
}

/// The name of a status code (`"OMNIFUSE_STATUS_OK"`, …), or `"OMNIFUSE_STATUS_UNKNOWN"`.
/// A static string: never freed, valid for the life of the process.
#[unsafe(no_mangle)]
pub extern "C" fn omnifuse_status_name(status: omnifuse_status) -> *const c_char {
    let name: &'static std::ffi::CStr = match status {
        OMNIFUSE_STATUS_OK => c"OMNIFUSE_STATUS_OK",
        OMNIFUSE_STATUS_INVALID_ARGUMENT => c"OMNIFUSE_STATUS_INVALID_ARGUMENT",
        OMNIFUSE_STATUS_BAD_INPUT => c"OMNIFUSE_STATUS_BAD_INPUT",
        OMNIFUSE_STATUS_UNSUPPORTED => c"OMNIFUSE_STATUS_UNSUPPORTED",
        OMNIFUSE_STATUS_DEVICE_ERROR => c"OMNIFUSE_STATUS_DEVICE_ERROR",
        OMNIFUSE_STATUS_OVERLOADED => c"OMNIFUSE_STATUS_OVERLOADED",
        OMNIFUSE_STATUS_PENDING => c"OMNIFUSE_STATUS_PENDING",
        OMNIFUSE_STATUS_CANCELLED => c"OMNIFUSE_STATUS_CANCELLED",
        OMNIFUSE_STATUS_TOO_LATE => c"OMNIFUSE_STATUS_TOO_LATE",
        OMNIFUSE_STATUS_NOT_FOUND => c"OMNIFUSE_STATUS_NOT_FOUND",
        OMNIFUSE_STATUS_IO_ERROR => c"OMNIFUSE_STATUS_IO_ERROR",
        OMNIFUSE_STATUS_INTERNAL => c"OMNIFUSE_STATUS_INTERNAL",
        OMNIFUSE_STATUS_PANIC => c"OMNIFUSE_STATUS_PANIC",
        _ => c"OMNIFUSE_STATUS_UNKNOWN",
    };
    name.as_ptr()
}

/// Run an entry point's body: `Ok` clears the last error and gives `OMNIFUSE_STATUS_OK`; a
/// failure stores its message and gives its status; a panic is caught and becomes
/// `OMNIFUSE_STATUS_PANIC` with the panic's text.
pub fn guard(body: impl FnOnce() -> Outcome) -> omnifuse_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            clear_last_error();
            OMNIFUSE_STATUS_OK
        }
        Ok(Err(f)) => {
            set_last_error(&f.message);
            f.status
        }
        Err(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with no message".to_string());
            set_last_error(&format!("panic inside omnifuse (a bug; please report it): {text}"));
            OMNIFUSE_STATUS_PANIC
        }
    }
}

/// Like [`guard`], but the body's own status is returned on success (for calls such as
/// `omnifuse_job_poll` whose success is more than one code).
pub fn guard_status(body: impl FnOnce() -> Outcome<omnifuse_status>) -> omnifuse_status {
    let mut code = OMNIFUSE_STATUS_OK;
    let status = guard(|| {
        code = body()?;
        Ok(())
    });
    if status == OMNIFUSE_STATUS_OK { code } else { status }
}
