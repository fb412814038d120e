//! One submitted request's life, shared by the caller's job handle and the engine's batcher:
//! queued → running → done (or cancelled while queued), its outcome, and its completion
//! callback. [`execute`] is the batcher's executor: it starts every job of a batch that was
//! not cancelled, runs them through `Model::run_batch` in one call, and finishes each.

use std::cell::Cell;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use omnifuse_model::Model;
use omnifuse_model::input::RawInput;
use omnifuse_model::output::Response;

use crate::request::Body;
use crate::status::{
    Failure, OMNIFUSE_STATUS_CANCELLED, OMNIFUSE_STATUS_OK, OMNIFUSE_STATUS_PANIC, OMNIFUSE_STATUS_PENDING,
    OMNIFUSE_STATUS_TOO_LATE, Outcome, omnifuse_status,
};

/// The completion callback of `omnifuse_submit`: called once with the job handle, its final
/// status and the caller's `user_data`, on the engine's worker thread (or on the thread that
/// cancels the job). The job handle is valid during the call.
#[allow(non_camel_case_types)]
pub type omnifuse_callback =
    Option<unsafe extern "C" fn(job: *mut crate::job::omnifuse_job, status: omnifuse_status, user_data: *mut c_void)>;

/// A callback with its user data.
struct Callback {
    f: unsafe extern "C" fn(*mut crate::job::omnifuse_job, omnifuse_status, *mut c_void),
    user_data: *mut c_void,
}

// SAFETY: the user data is an opaque pointer the caller gave us to pass back; by the
// documented contract of `omnifuse_submit` it may be used from the engine's worker thread.
unsafe impl Send for Callback {}

thread_local! {
    /// Set while this thread runs a completion callback: waiting for the engine here would
    /// wait for ourselves.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// True while the calling thread is inside a completion callback.
pub fn in_callback() -> bool {
    IN_CALLBACK.with(Cell::get)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Queued,
    Running,
    Done,
}

/// Where the callback stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Notify {
    /// Not called yet.
    Waiting,
    /// Being called now, on this thread.
    Calling(ThreadId),
    /// Called, or never to be called (no callback, or the job handle was destroyed first).
    Over,
}

struct State {
    phase: Phase,
    outcome: Option<Outcome<Box<Response>>>,
    taken: bool,
    notify: Notify,
    callback: Option<Callback>,
}

/// A request on its way through the engine.
pub struct Work {
    body: Arc<Body>,
    state: Mutex<State>,
    changed: Condvar,
    handle: AtomicPtr<crate::job::omnifuse_job>,
}

impl Work {
    /// A queued job for `body`, with an optional callback.
    pub fn new(body: Arc<Body>, callback: omnifuse_callback, user_data: *mut c_void) -> Arc<Work> {
        let callback = callback.map(|f| Callback { f, user_data });
        let notify = if callback.is_some() { Notify::Waiting } else { Notify::Over };
        Arc::new(Work {
            body,
            state: Mutex::new(State { phase: Phase::Queued, outcome: None, taken: false, notify, callback }),
            changed: Condvar::new(),
            handle: AtomicPtr::new(std::ptr::null_mut()),
        })
    }

    /// Tell the job which handle the callback receives.
    pub fn set_handle(&self, h: *mut crate::job::omnifuse_job) {
        self.handle.store(h, Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update under this lock is a few plain assignments: a poisoned lock still
        // holds a consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Estimated tokens, for the batch token budget: text bytes, and a fixed share per
    /// media input.
    pub fn tokens(&self) -> usize {
        self.body
            .inputs
            .iter()
            .map(|i| match i {
                RawInput::Text(s) => s.len() + 2,
                _ => 256,
            })
            .sum::<usize>()
            .max(1)
    }

    /// Queued → running; false when the job was cancelled meanwhile.
    fn start(&self) -> bool {
        let mut st = self.lock();
        if st.phase == Phase::Queued {
            st.phase = Phase::Running;
            true
        } else {
            false
        }
    }

    /// Record the outcome under the lock `st`; the callback to call, if it is due.
    fn complete(st: &mut State, outcome: Outcome<Box<Response>>) -> Option<Callback> {
        st.phase = Phase::Done;
        st.outcome = Some(outcome);
        if st.notify == Notify::Waiting {
            st.notify = Notify::Calling(std::thread::current().id());
            st.callback.take()
        } else {
            None
        }
    }

    /// Wake the waiters, then call the callback (outside the lock) with `status`.
    fn notify(&self, callback: Option<Callback>, status: omnifuse_status) {
        self.changed.notify_all();
        if let Some(cb) = callback {
            let was = IN_CALLBACK.with(|c| c.replace(true));
            // SAFETY: the caller gave us this function and user data for exactly this call;
            // the handle is live: destroying it waits while the callback is being called.
            unsafe { (cb.f)(self.handle.load(Ordering::Acquire), status, cb.user_data) };
            IN_CALLBACK.with(|c| c.set(was));
            self.lock().notify = Notify::Over;
            self.changed.notify_all();
        }
    }

    /// Finish a running job with `outcome`.
    fn finish(&self, outcome: Outcome<Box<Response>>) {
        let status = outcome.as_ref().map_or_else(|f| f.status, |_| OMNIFUSE_STATUS_OK);
        let callback = Work::complete(&mut self.lock(), outcome);
        self.notify(callback, status);
    }

    /// The final status: `OMNIFUSE_STATUS_PENDING` while not done, else `Ok(OK)` or the
    /// job's failure.
    pub fn poll(&self) -> Outcome<omnifuse_status> {
        let st = self.lock();
        match (&st.phase, &st.outcome) {
            (Phase::Done, Some(Err(f))) => Err(f.clone()),
            (Phase::Done, _) => Ok(OMNIFUSE_STATUS_OK),
            _ => Ok(OMNIFUSE_STATUS_PENDING),
        }
    }

    /// Wait until done, at most `timeout` (`None`: forever); then as [`Work::poll`].
    pub fn wait(&self, timeout: Option<Duration>) -> Outcome<omnifuse_status> {
        let deadline = timeout.map(|t| Instant::now() + t);
        {
            let mut st = self.lock();
            while st.phase != Phase::Done {
                if in_callback() {
                    return Err(Failure::invalid(
                        "waiting for an unfinished job inside a completion callback would block the engine that \
                         runs it: wait outside the callback, or poll",
                    ));
                }
                st = match deadline {
                    None => self.changed.wait(st).unwrap_or_else(|p| p.into_inner()),
                    Some(d) => {
                        let left = d.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Ok(OMNIFUSE_STATUS_PENDING);
                        }
                        self.changed.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0
                    }
                };
            }
        }
        self.poll()
    }

    /// Cancel the job if it has not started: it finishes as cancelled (its callback runs
    /// on this thread). `OMNIFUSE_STATUS_TOO_LATE` when it had already started.
    pub fn cancel(&self) -> Outcome {
        let callback = {
            let mut st = self.lock();
            match st.phase {
                Phase::Queued => Work::complete(
                    &mut st,
                    Err(Failure::new(OMNIFUSE_STATUS_CANCELLED, "the job was cancelled before it started")),
                ),
                Phase::Running => {
                    return Err(Failure::new(OMNIFUSE_STATUS_TOO_LATE, "the job is running: too late to cancel it"));
                }
                Phase::Done => {
                    return Err(Failure::new(OMNIFUSE_STATUS_TOO_LATE, "the job has finished: nothing to cancel"));
                }
            }
        };
        self.notify(callback, OMNIFUSE_STATUS_CANCELLED);
        Ok(())
    }

    /// Move the response out (once); the job's failure, or `PENDING`, otherwise.
    pub fn take(&self) -> Outcome<Box<Response>> {
        let mut st = self.lock();
        if st.phase != Phase::Done {
            return Err(Failure::new(OMNIFUSE_STATUS_PENDING, "the job has not finished yet: wait or poll first"));
        }
        if st.taken {
            return Err(Failure::invalid("the job's result was already taken: a result is taken once"));
        }
        match st.outcome.take() {
            Some(Ok(r)) => {
                st.taken = true;
                Ok(r)
            }
            Some(Err(f)) => {
                st.outcome = Some(Err(f.clone()));
                Err(f)
            }
            None => Err(Failure::new(crate::status::OMNIFUSE_STATUS_INTERNAL, "a finished job holds no outcome")),
        }
    }

    /// The handle is going away: cancel a queued job without calling its callback, make
    /// sure the callback will not be called any more, and wait while it is being called on
    /// another thread.
    pub fn detach(&self) {
        let mut st = self.lock();
        if st.notify == Notify::Waiting {
            st.notify = Notify::Over;
            st.callback = None;
        }
        if st.phase == Phase::Queued {
            let _ = Work::complete(
                &mut st,
                Err(Failure::new(OMNIFUSE_STATUS_CANCELLED, "the job was destroyed before it started")),
            );
            self.changed.notify_all();
        }
        let me = std::thread::current().id();
        while matches!(st.notify, Notify::Calling(t) if t != me) {
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The batcher's executor: run every job of `batch` that was not cancelled through one
/// `Model::run_batch` call and finish each; one (unit) result per job.
pub fn execute(model: &Model, batch: Vec<Arc<Work>>) -> Vec<()> {
    let n = batch.len();
    let running: Vec<Arc<Work>> = batch.into_iter().filter(|w| w.start()).collect();
    if !running.is_empty() {
        let requests: Vec<(&[RawInput], &omnifuse_model::request::Parameters)> =
            running.iter().map(|w| (w.body.inputs.as_slice(), &w.body.params)).collect();
        match catch_unwind(AssertUnwindSafe(|| model.run_batch(&requests))) {
            Ok(results) if results.len() == running.len() => {
                for (w, r) in running.iter().zip(results) {
                    w.finish(r.map(Box::new).map_err(Failure::from));
                }
            }
            Ok(results) => {
                let msg = format!("the model answered {} of {} requests", results.len(), running.len());
                for w in &running {
                    w.finish(Err(Failure::new(crate::status::OMNIFUSE_STATUS_INTERNAL, msg.clone())));
                }
            }
            Err(_) => {
                for w in &running {
                    w.finish(Err(Failure::new(
                        OMNIFUSE_STATUS_PANIC,
                        "panic inside the model while running this job's batch (a bug; please report it)",
                    )));
                }
            }
        }
    }
    vec![(); n]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::AtomicUsize;

    use super::*;

    unsafe extern "C" fn count(_job: *mut crate::job::omnifuse_job, status: omnifuse_status, user_data: *mut c_void) {
        assert_eq!(status, OMNIFUSE_STATUS_CANCELLED);
        // SAFETY: the tests pass a pointer to a live AtomicUsize.
        unsafe { &*user_data.cast::<AtomicUsize>() }.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn a_queued_job_cancels_once_and_reports_it_everywhere() {
        let calls = AtomicUsize::new(0);
        let w = Work::new(Arc::default(), Some(count), (&calls as *const AtomicUsize).cast_mut().cast());
        assert_eq!(w.poll(), Ok(OMNIFUSE_STATUS_PENDING));
        assert_eq!(w.wait(Some(Duration::from_millis(1))), Ok(OMNIFUSE_STATUS_PENDING));
        assert_eq!(w.take().unwrap_err().status, OMNIFUSE_STATUS_PENDING);
        w.cancel().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the callback ran once, on the cancelling thread");
        assert_eq!(w.poll().unwrap_err().status, OMNIFUSE_STATUS_CANCELLED);
        assert_eq!(w.wait(None).unwrap_err().status, OMNIFUSE_STATUS_CANCELLED);
        assert_eq!(w.cancel().unwrap_err().status, OMNIFUSE_STATUS_TOO_LATE);
        assert_eq!(w.take().unwrap_err().status, OMNIFUSE_STATUS_CANCELLED);
        assert!(!w.start(), "a cancelled job never starts");
        w.detach();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_detached_job_never_calls_back_and_never_runs() {
        let calls = AtomicUsize::new(0);
        let w = Work::new(Arc::default(), Some(count), (&calls as *const AtomicUsize).cast_mut().cast());
        w.detach();
        assert!(!w.start());
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(w.poll().unwrap_err().status, OMNIFUSE_STATUS_CANCELLED);
    }

    #[test]
    fn a_running_job_is_too_late_to_cancel() {
        let w = Work::new(Arc::default(), None, std::ptr::null_mut());
        assert!(w.start());
        assert_eq!(w.cancel().unwrap_err().status, OMNIFUSE_STATUS_TOO_LATE);
        w.finish(Err(Failure::new(crate::status::OMNIFUSE_STATUS_BAD_INPUT, "bad")));
        assert_eq!(w.wait(None).unwrap_err().message, "bad");
    }
}
