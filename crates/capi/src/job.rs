//! Running requests: `omnifuse_infer` (synchronous) and `omnifuse_submit` (asynchronous, with
//! a completion callback and a pollable job handle). Both queue the request in the engine's
//! one batcher, so requests from many threads share batches.

use std::ffi::c_void;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::{engine_ref, omnifuse_engine};
use crate::handle::{self, handle_type};
use crate::request::omnifuse_request;
use crate::result::omnifuse_result;
use crate::status::{Failure, Outcome, guard, guard_status, omnifuse_status};
use crate::work::{self, Work, omnifuse_callback};

/// An asynchronous request. Owned by the caller; free it with `omnifuse_job_destroy`. Its
/// calls may be made from any thread, and from inside its own completion callback.
#[allow(non_camel_case_types)]
pub struct omnifuse_job {
    magic: u64,
    work: Arc<Work>,
}
handle_type!(omnifuse_job, 0x6f6d_6e69_6a6f_6231, "omnifuse_job");

/// Borrow the job behind `job`.
///
/// # Safety
/// `job` is NULL or a pointer this library returned.
unsafe fn job_ref<'a>(job: *const omnifuse_job) -> Outcome<&'a Work> {
    // SAFETY: the same contract as ours.
    Ok(unsafe { handle::borrow(job, "job")? }.work.as_ref())
}

/// Run `req` on `engine` and wait for its answer, written to `*out` (free it with
/// `omnifuse_result_destroy`). The request goes through the engine's batcher like any
/// submission, so it may share a batch with requests of other threads. `req` is only read;
/// it stays the caller's. Refused inside a completion callback (it would wait for itself).
///
/// # Safety
/// `engine` and `req` are live handles; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_infer(
    engine: *const omnifuse_engine,
    req: *const omnifuse_request,
    out: *mut *mut omnifuse_result,
) -> omnifuse_status {
    guard(|| {
        // SAFETY: live handles by our contract.
        let (e, r) = unsafe { (engine_ref(engine)?, handle::borrow(req, "req")?) };
        if out.is_null() {
            return Err(Failure::invalid("out is NULL: expected a pointer to write the new omnifuse_result to"));
        }
        if work::in_callback() {
            return Err(Failure::invalid(
                "omnifuse_infer inside a completion callback would wait for the engine's own thread: use \
                 omnifuse_submit there",
            ));
        }
        let w = Work::new(r.snapshot(), None, std::ptr::null_mut());
        e.submit(w.clone())?;
        w.wait(None)?;
        let response = w.take()?;
        // SAFETY: `out` was checked non-NULL; writable by our contract.
        unsafe { handle::hand_out(out, "out", omnifuse_result::new(*response)) }
    })
}

/// Queue `req` on `engine` and return at once with a job handle in `*out` (free it with
/// `omnifuse_job_destroy`). When the job ends — done, failed or cancelled — `callback` (may be
/// NULL) is called once with the job, its final status and `user_data`, on the engine's
/// worker thread (or, for a cancellation, on the cancelling thread); it may even run before
/// this function returns. Inside the callback, `omnifuse_job_take_result` and the other job
/// calls work, but `omnifuse_infer`, waiting for another unfinished job and destroying the
/// engine are refused; keep the callback short, since the engine's next batch waits for it.
/// `req` is only read (a snapshot is queued); it stays the caller's. A full queue gives
/// `OMNIFUSE_STATUS_OVERLOADED` and no job.
///
/// # Safety
/// `engine` and `req` are live handles; `out` is NULL or writable; `callback` and
/// `user_data` may be used from the engine's worker thread until the callback has run or
/// the job is destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_submit(
    engine: *const omnifuse_engine,
    req: *const omnifuse_request,
    callback: omnifuse_callback,
    user_data: *mut c_void,
    out: *mut *mut omnifuse_job,
) -> omnifuse_status {
    guard(|| {
        // SAFETY: live handles by our contract.
        let (e, r) = unsafe { (engine_ref(engine)?, handle::borrow(req, "req")?) };
        if out.is_null() {
            return Err(Failure::invalid("out is NULL: expected a pointer to write the new omnifuse_job to"));
        }
        let w = Work::new(r.snapshot(), callback, user_data);
        let h = handle::into_raw(omnifuse_job { magic: <omnifuse_job as handle::Handle>::MAGIC, work: w.clone() });
        w.set_handle(h);
        // SAFETY: `out` was checked non-NULL; writable by our contract. Written before the
        // job is queued, so `*out` is set when the callback runs.
        unsafe { out.write(h) };
        if let Err(f) = e.submit(w) {
            // SAFETY: `out` is writable; `h` came from `into_raw` and was never queued.
            unsafe {
                out.write(std::ptr::null_mut());
                drop(Box::from_raw(h));
            }
            return Err(f);
        }
        Ok(())
    })
}

/// The job's state without waiting: `OMNIFUSE_STATUS_PENDING` while it is queued or
/// running, `OMNIFUSE_STATUS_OK` when its result is ready, or its failure (with
/// `omnifuse_last_error()` saying why; `OMNIFUSE_STATUS_CANCELLED` if it was cancelled).
///
/// # Safety
/// `job` is a live job.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_job_poll(job: *const omnifuse_job) -> omnifuse_status {
    // SAFETY: a live job by our contract.
    guard_status(|| unsafe { job_ref(job)? }.poll())
}

/// Wait until the job ends, at most `timeout_us` microseconds (negative: no limit), then
/// answer as `omnifuse_job_poll` (`OMNIFUSE_STATUS_PENDING` when the time ran out). Its
/// callback may still be running when this returns.
///
/// # Safety
/// `job` is a live job.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_job_wait(job: *const omnifuse_job, timeout_us: i64) -> omnifuse_status {
    guard_status(|| {
        // SAFETY: a live job by our contract.
        let w = unsafe { job_ref(job)? };
        let timeout = u64::try_from(timeout_us).ok().map(Duration::from_micros);
        w.wait(timeout)
    })
}

/// Cancel the job if it has not started: it ends with `OMNIFUSE_STATUS_CANCELLED` and its
/// callback is called on this thread before this returns `OMNIFUSE_STATUS_OK`. A job that has
/// started runs to its end: `OMNIFUSE_STATUS_TOO_LATE`.
///
/// # Safety
/// `job` is a live job.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_job_cancel(job: *const omnifuse_job) -> omnifuse_status {
    // SAFETY: a live job by our contract.
    guard(|| unsafe { job_ref(job)? }.cancel())
}

/// Move the job's result to `*out` (free it with `omnifuse_result_destroy`); a result is
/// taken once. `OMNIFUSE_STATUS_PENDING` if the job has not ended; the job's own failure
/// status (and message) if it failed or was cancelled.
///
/// # Safety
/// `job` is a live job; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_job_take_result(
    job: *const omnifuse_job,
    out: *mut *mut omnifuse_result,
) -> omnifuse_status {
    guard(|| {
        // SAFETY: a live job by our contract.
        let w = unsafe { job_ref(job)? };
        if out.is_null() {
            return Err(Failure::invalid("out is NULL: expected a pointer to write the new omnifuse_result to"));
        }
        let response = w.take()?;
        // SAFETY: `out` was checked non-NULL; writable by our contract.
        unsafe { handle::hand_out(out, "out", omnifuse_result::new(*response)) }
    })
}

/// Free a job (NULL is accepted). A job still queued is cancelled; a running one finishes
/// unobserved. Its callback is never called after this returns (if it is running on another
/// thread, this waits for it to return); the callback may destroy its own job.
///
/// # Safety
/// `job` is NULL or a live job not used by another thread; it is dangling afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_job_destroy(job: *mut omnifuse_job) -> omnifuse_status {
    guard(|| {
        if job.is_null() {
            return Ok(());
        }
        // SAFETY: a live job by our contract. Detached while the handle is still live, since a
        // callback running on another thread may be using it.
        unsafe { job_ref(job)? }.detach();
        // SAFETY: a live job, not used again, by our contract.
        unsafe { handle::destroy(job, "job")? };
        Ok(())
    })
}
