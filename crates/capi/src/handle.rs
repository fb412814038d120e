//! Opaque handles: every object handed to C is a `Box` whose first field is a magic tag of
//! its type, so a NULL pointer, a pointer to another kind of handle, or (often) a handle
//! already destroyed is refused with `OMNIFUSE_STATUS_INVALID_ARGUMENT` instead of being
//! used. The tag is cleared on destroy.

use crate::status::{Failure, Outcome};

/// A type handed to C behind an opaque pointer.
pub trait Handle: Sized {
    /// The tag a live handle of this type carries.
    const MAGIC: u64;
    /// The C name of the type, for messages.
    const NAME: &'static str;
    /// The tag field.
    fn magic(&self) -> u64;
    /// Clear the tag (called just before the handle is freed).
    fn clear_magic(&mut self);
}

/// Move `value` to the heap and give C its pointer.
pub fn into_raw<T: Handle>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Borrow the handle behind `ptr`, refusing NULL and foreign or destroyed handles.
///
/// # Safety
/// `ptr` is NULL or points to readable memory at least as large as `T` (the C caller's
/// contract: a pointer this library returned and that has not been freed).
pub unsafe fn borrow<'a, T: Handle>(ptr: *const T, what: &str) -> Outcome<&'a T> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL: expected a {} from omnifuse", T::NAME)));
    }
    // SAFETY: non-NULL, and by the caller's contract it points to a live allocation of T.
    let value = unsafe { &*ptr };
    if value.magic() != T::MAGIC {
        return Err(Failure::invalid(format!(
            "{what} is not a live {} (wrong tag: a different kind of handle, or one already destroyed)",
            T::NAME
        )));
    }
    Ok(value)
}

/// Borrow the handle behind `ptr` mutably; the same checks as [`borrow`].
///
/// # Safety
/// As [`borrow`], and no other reference to the handle is in use (the C caller does not
/// use the same handle from two threads at once).
pub unsafe fn borrow_mut<'a, T: Handle>(ptr: *mut T, what: &str) -> Outcome<&'a mut T> {
    // SAFETY: the same contract as ours.
    unsafe { borrow(ptr.cast_const(), what)? };
    // SAFETY: checked non-NULL and tagged above; exclusive by the caller's contract.
    Ok(unsafe { &mut *ptr })
}

/// Take back and free the handle behind `ptr`. NULL is accepted and does nothing (like
/// `free`); a foreign or destroyed handle is refused.
///
/// # Safety
/// As [`borrow_mut`]; after this returns `Ok`, `ptr` is dangling.
pub unsafe fn destroy<T: Handle>(ptr: *mut T, what: &str) -> Outcome<Option<Box<T>>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the same contract as ours.
    unsafe { borrow(ptr.cast_const(), what)? };
    // SAFETY: the pointer came from `into_raw` (its tag says so) and is not used again.
    let mut boxed = unsafe { Box::from_raw(ptr) };
    boxed.clear_magic();
    Ok(Some(boxed))
}

/// Write `value` through an out-pointer, refusing NULL.
///
/// # Safety
/// `out` is NULL or valid for one write of `T`.
pub unsafe fn write_out<T>(out: *mut T, what: &str, value: T) -> Outcome {
    if out.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL: expected a pointer to write the answer to")));
    }
    // SAFETY: non-NULL and writable by the caller's contract.
    unsafe { out.write(value) };
    Ok(())
}

/// Declare the magic tag and name of a handle type whose tag field is `magic`.
macro_rules! handle_type {
    ($ty:ty, $magic:expr, $name:expr) => {
        impl $crate::handle::Handle for $ty {
            const MAGIC: u64 = $magic;
            const NAME: &'static str = $name;
            fn magic(&self) -> u64 {
                self.magic
            }
            fn clear_magic(&mut self) {
                self.magic = 0;
            }
        }
    };
}
pub(crate) use handle_type;

/// Move `value` to the heap and write its pointer through `out`, refusing a NULL `out`
/// before anything is allocated.
///
/// # Safety
/// `out` is NULL or valid for one write of a pointer.
pub unsafe fn hand_out<T: Handle>(out: *mut *mut T, what: &str, value: T) -> Outcome {
    if out.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL: expected a pointer to write the new {} to", T::NAME)));
    }
    // SAFETY: non-NULL and writable by the caller's contract.
    unsafe { out.write(into_raw(value)) };
    Ok(())
}
