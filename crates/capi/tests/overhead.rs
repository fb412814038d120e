//! Measurements, not checks (ignored by default; run with
//! `cargo test --release -p omnifuse-capi --test overhead -- --ignored --nocapture`):
//! - the cost of the C ABI's synchronous path (request handle → batcher → worker thread →
//!   result handle) against calling `Model::run` in process on the same model, interleaved,
//!   200 text-only requests each, medians reported;
//! - the batch sizes the engine forms when 8 threads call `omnifuse_infer` at once.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use std::ptr;
use std::time::Instant;

use omnifuse::engine::{omnifuse_engine, omnifuse_engine_create, omnifuse_engine_destroy};
use omnifuse::job::omnifuse_infer;
use omnifuse::request::{
    omnifuse_request, omnifuse_request_add_text, omnifuse_request_create, omnifuse_request_destroy,
};
use omnifuse::result::{omnifuse_result, omnifuse_result_destroy};
use omnifuse::status::OMNIFUSE_STATUS_OK;
use omnifuse_model::input::RawInput;
use omnifuse_model::request::Parameters;

const TEXT: &str = "a calm sea at dawn";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p) as usize]
}

struct Handles {
    engine: *mut omnifuse_engine,
    req: *mut omnifuse_request,
}

fn open() -> Handles {
    let (mut engine, mut req) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: NULL options (defaults) and valid out-pointers; the text is TEXT.len() bytes.
    unsafe {
        assert_eq!(omnifuse_engine_create(ptr::null(), &mut engine), OMNIFUSE_STATUS_OK);
        assert_eq!(omnifuse_request_create(&mut req), OMNIFUSE_STATUS_OK);
        assert_eq!(omnifuse_request_add_text(req, TEXT.as_ptr().cast(), TEXT.len()), OMNIFUSE_STATUS_OK);
    }
    Handles { engine, req }
}

fn c_infer(h: &Handles) {
    let mut res: *mut omnifuse_result = ptr::null_mut();
    // SAFETY: live handles from `open`; the result is freed right away.
    unsafe {
        assert_eq!(omnifuse_infer(h.engine, h.req, &mut res), OMNIFUSE_STATUS_OK);
        assert_eq!(omnifuse_result_destroy(res), OMNIFUSE_STATUS_OK);
    }
}

fn close(h: Handles) {
    // SAFETY: live handles from `open`, not used again.
    unsafe {
        assert_eq!(omnifuse_request_destroy(h.req), OMNIFUSE_STATUS_OK);
        assert_eq!(omnifuse_engine_destroy(h.engine), OMNIFUSE_STATUS_OK);
    }
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn sync_infer_through_the_c_abi_against_model_run() {
    let h = open();
    // SAFETY: a live engine from `open`.
    let model = unsafe { &*h.engine }.engine().model.clone();
    let inputs = vec![RawInput::Text(TEXT.into())];
    let params = Parameters::default();
    for _ in 0..10 {
        model.run(&inputs, &params).unwrap();
        c_infer(&h);
    }
    let (mut rust, mut c) = (Vec::new(), Vec::new());
    for i in 0..200 {
        // Alternate which goes first, so neither always runs on a warmer cache.
        let order = if i % 2 == 0 { [true, false] } else { [false, true] };
        for through_c in order {
            let t = Instant::now();
            if through_c {
                c_infer(&h);
            } else {
                model.run(&inputs, &params).unwrap();
            }
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if through_c { c.push(ms) } else { rust.push(ms) }
        }
    }
    let (mr, mc) = (median(rust.clone()), median(c.clone()));
    println!(
        "text-only request, {} runs each, interleaved on one model:\n  Model::run in process: median {mr:.3} ms (p10 {:.3}, p90 {:.3})\n  omnifuse_infer (C ABI): median {mc:.3} ms (p10 {:.3}, p90 {:.3})\n  ratio C ABI / in process: {:.4} ({:+.2}%)",
        rust.len(),
        percentile(rust.clone(), 0.1),
        percentile(rust, 0.9),
        percentile(c.clone(), 0.1),
        percentile(c, 0.9),
        mc / mr,
        (mc / mr - 1.0) * 100.0
    );
    close(h);
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn eight_threads_share_batches() {
    let h = open();
    let addr = (h.engine as usize, h.req as usize);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(move || {
                let h = Handles { engine: addr.0 as *mut omnifuse_engine, req: addr.1 as *mut omnifuse_request };
                for _ in 0..10 {
                    c_infer(&h);
                }
            });
        }
    });
    let secs = t.elapsed().as_secs_f64();
    // SAFETY: a live engine from `open`.
    let sizes = unsafe { &*h.engine }.engine().batch_sizes();
    let mut hist = std::collections::BTreeMap::new();
    for s in &sizes {
        *hist.entry(*s).or_insert(0) += 1;
    }
    println!("8 threads × 10 omnifuse_infer: {} batches in {secs:.2} s; batch size → count: {hist:?}", sizes.len());
    close(h);
}
