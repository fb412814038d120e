//! Reading C strings and buffers: NULL checks, UTF-8 checks and length rules in one place,
//! with messages that name the argument.

use std::ffi::{CStr, c_char};

use crate::status::{Failure, Outcome};

/// The NUL-terminated UTF-8 string at `ptr`, or `None` for NULL.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string.
pub unsafe fn opt_cstr<'a>(ptr: *const c_char, what: &str) -> Outcome<Option<&'a str>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str().map(Some).map_err(|e| Failure::invalid(format!("{what} is not UTF-8: {e}")))
}

/// The NUL-terminated UTF-8 string at `ptr`, refusing NULL.
///
/// # Safety
/// As [`opt_cstr`].
pub unsafe fn cstr<'a>(ptr: *const c_char, what: &str) -> Outcome<&'a str> {
    // SAFETY: the same contract as ours.
    unsafe { opt_cstr(ptr, what)? }
        .ok_or_else(|| Failure::invalid(format!("{what} is NULL: expected a NUL-terminated UTF-8 string")))
}

/// `len` elements at `ptr`; NULL is accepted only when `len` is 0.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `len` elements of `T` for `'a`.
pub unsafe fn slice<'a, T>(ptr: *const T, len: usize, what: &str) -> Outcome<&'a [T]> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Failure::invalid(format!("{what} is NULL with length {len}: expected a pointer to {len} elements")))
        };
    }
    if len.checked_mul(size_of::<T>()).is_none_or(|b| b > isize::MAX as usize) {
        return Err(Failure::invalid(format!("{what}: length {len} is larger than any buffer can be")));
    }
    // SAFETY: non-NULL, length within isize, readable for `len` elements by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// `len` bytes of UTF-8 at `ptr` (not necessarily NUL-terminated).
///
/// # Safety
/// As [`slice`].
pub unsafe fn utf8<'a>(ptr: *const c_char, len: usize, what: &str) -> Outcome<&'a str> {
    // SAFETY: the same contract as ours.
    let bytes = unsafe { slice(ptr.cast::<u8>(), len, what)? };
    std::str::from_utf8(bytes).map_err(|e| Failure::invalid(format!("{what} is not UTF-8: {e}")))
}
