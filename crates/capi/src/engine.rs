//! Engines: a model opened on a device, with one dynamic batcher in front of it. Every
//! inference of an engine — synchronous or asynchronous, from any number of threads — goes
//! through that one batcher, so concurrent requests are fused into shared batches.

use std::ffi::{CString, c_char};
use std::sync::Arc;

use omnifuse_model::Model;
use omnifuse_registry::{OpenOptions, open_with};
use omnifuse_serve::Batcher;
use omnifuse_serve::batcher::SubmitError;

use crate::handle::{self, handle_type};
use crate::settings::{Settings, default_options, omnifuse_engine_options};
use crate::status::{Failure, OMNIFUSE_STATUS_OVERLOADED, Outcome, guard, omnifuse_status};
use crate::text::cstr;
use crate::work::{self, Work};

/// A model on a device with its batcher. Thread-safe: every call taking a `const
/// omnifuse_engine*` may be made from any number of threads at once. Owned by the caller;
/// free it with `omnifuse_engine_destroy` once no other call on it is in progress.
#[allow(non_camel_case_types)]
pub struct omnifuse_engine {
    magic: u64,
    pub(crate) inner: Arc<Engine>,
}
handle_type!(omnifuse_engine, 0x6f6d_6e69_656e_6731, "omnifuse_engine");

/// The engine's shared state.
pub struct Engine {
    /// The model.
    pub model: Arc<Model>,
    batcher: Batcher<Arc<Work>, ()>,
    /// The model's heads as JSON (NUL-terminated), for introspection.
    pub heads_json: CString,
    /// Each head's name, NUL-terminated, in config order.
    pub head_names: Vec<CString>,
}

// The engine is shared by every thread that calls into it.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<Engine>();
    shared::<omnifuse_engine>();
};

impl Engine {
    /// Open the model `s` names and start its batcher.
    pub fn open(s: &Settings) -> Outcome<Engine> {
        let backend = open_with(&s.device, OpenOptions { threads: s.threads })?;
        let model = Arc::new(match &s.model_dir {
            Some(dir) => match s.precision {
                Some(p) => Model::load_in(dir, backend, p)?,
                None => Model::load(dir, backend)?,
            },
            None => Model::preset_in(&s.preset, backend, s.precision.unwrap_or_default())?,
        });
        let heads_json = crate::info::heads_json(&model)?;
        let head_names =
            model.config().heads.iter().map(|h| CString::new(h.name.as_str()).unwrap_or_default()).collect();
        let m = model.clone();
        let batcher = Batcher::new(s.policy.clone(), move |batch: Vec<Arc<Work>>| work::execute(&m, batch))
            .map_err(|e| Failure::invalid(e.to_string()))?;
        Ok(Engine { model, batcher, heads_json, head_names })
    }

    /// Queue `w` in the batcher.
    pub fn submit(&self, w: Arc<Work>) -> Outcome {
        let tokens = w.tokens();
        // Completion is signalled through the job itself, so the batcher's ticket is not kept.
        match self.batcher.submit(w, tokens, 0, None) {
            Ok(_ticket) => Ok(()),
            Err(e @ SubmitError::Full { .. }) => Err(Failure::new(OMNIFUSE_STATUS_OVERLOADED, e.to_string())),
            Err(e @ SubmitError::Stopped) => Err(Failure::invalid(e.to_string())),
        }
    }

    /// Sizes of the batches run so far.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.batcher.batch_sizes()
    }
}

impl omnifuse_engine {
    /// The engine's shared state (for Rust callers of this crate: measurements and tests).
    pub fn engine(&self) -> &Engine {
        &self.inner
    }
}

/// Borrow the engine behind `engine`.
///
/// # Safety
/// `engine` is NULL or a pointer this library returned.
pub unsafe fn engine_ref<'a>(engine: *const omnifuse_engine) -> Outcome<&'a Engine> {
    // SAFETY: the same contract as ours.
    Ok(unsafe { handle::borrow(engine, "engine")? }.inner.as_ref())
}

fn create(settings: Outcome<Settings>, out: *mut *mut omnifuse_engine) -> Outcome {
    if out.is_null() {
        return Err(Failure::invalid("out is NULL: expected a pointer to write the new omnifuse_engine to"));
    }
    let engine = Engine::open(&settings?)?;
    let h = omnifuse_engine { magic: <omnifuse_engine as handle::Handle>::MAGIC, inner: Arc::new(engine) };
    // SAFETY: `out` was checked non-NULL; writable by the caller's contract.
    unsafe { handle::hand_out(out, "out", h) }
}

/// Fill `options` with the defaults: built-in `omni-small`, backend `cpu`, fp32, all cores,
/// batches of up to 16 requests, no added queue delay, 1024 requests queued at most.
///
/// # Safety
/// `options` is NULL or points to writable memory of `sizeof(omnifuse_engine_options)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_engine_options_init(options: *mut omnifuse_engine_options) -> omnifuse_status {
    guard(|| {
        // SAFETY: NULL or writable by our contract.
        unsafe { handle::write_out(options, "options", default_options()) }
    })
}

/// Open an engine: load the model (a directory, or a built-in preset), open the device,
/// start the batcher. `options` NULL means all defaults; it is read only during the call.
/// The new engine is written to `*out`; free it with `omnifuse_engine_destroy`.
///
/// # Safety
/// `options` is NULL or a filled options struct; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_engine_create(
    options: *const omnifuse_engine_options,
    out: *mut *mut omnifuse_engine,
) -> omnifuse_status {
    guard(|| {
        let settings = if options.is_null() {
            Ok(Settings::default())
        } else {
            // SAFETY: non-NULL and filled by our contract; its strings are NULL or NUL-terminated.
            unsafe { Settings::from_options(&*options) }
        };
        create(settings, out)
    })
}

/// Open an engine from a JSON object of options, e.g.
/// `{"model_dir":"/models/omni","backend":"cpu","precision":"fp32","max_batch":8,"max_delay_us":2000}`
/// (keys as the fields of `omnifuse_engine_options`; absent keys keep their defaults,
/// unknown keys are errors). `json` is read only during the call.
///
/// # Safety
/// `json` is NULL or NUL-terminated; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_engine_create_json(
    json: *const c_char,
    out: *mut *mut omnifuse_engine,
) -> omnifuse_status {
    guard(|| {
        // SAFETY: NULL or NUL-terminated by our contract.
        let text = unsafe { cstr(json, "json")? };
        create(Settings::from_json(text), out)
    })
}

/// Stop and free an engine (NULL is accepted): admission stops, every request already
/// queued still runs and completes (callbacks included), then the worker stops. Jobs stay
/// valid until destroyed. Must not be called while another call on this engine is in
/// progress, nor from a completion callback (refused: it would wait for itself).
///
/// # Safety
/// `engine` is NULL or a live engine no other thread is using; it is dangling afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_engine_destroy(engine: *mut omnifuse_engine) -> omnifuse_status {
    guard(|| {
        if work::in_callback() && !engine.is_null() {
            return Err(Failure::invalid(
                "omnifuse_engine_destroy inside a completion callback would wait for the engine's own thread: \
                 destroy the engine from another thread",
            ));
        }
        // SAFETY: NULL or a live engine, not used again, by our contract.
        unsafe { handle::destroy(engine, "engine")? };
        Ok(())
    })
}
