//! The conformance suite every omnifuse backend instantiates with one macro call:
//! every op × dtype, proptest-generated shapes and values, each case compared with the CPU
//! reference tier by normalised MSE (exact for integer outputs) with NaN/Inf checks, output
//! sentinels and guard bytes; plus a table of invalid inputs that every op must refuse.
//!
//! ```ignore
//! omnifuse_testkit::conformance_suite!("cpu", omnifuse_cpu::CpuBackend::fast(), require_all);
//! ```
//!
//! A backend whose device is absent skips (printing why) unless `OMNIFUSE_REQUIRE_DEVICE`
//! names it. `OMNIFUSE_CASES` sets cases per op × dtype (default 256), `OMNIFUSE_SEED` the seed.

// Failing a test is this crate's job, and a Rust test fails by panicking.
#![allow(clippy::panic)]

pub mod cases;

pub mod compare;
pub mod reject;
pub mod suite;

use std::sync::Arc;

pub use omnifuse_core;
use omnifuse_core::op::OpKind;
use omnifuse_core::{Backend, Result};
pub use suite::{OpReport, Status, all_pairs, run_op};

/// Open the backend under test, or decide to skip: `None` when it is absent and not required.
/// Panics (failing the test) when `OMNIFUSE_REQUIRE_DEVICE` names `device` and it is absent.
pub fn open_or_skip(device: &str, open: impl FnOnce() -> Result<Arc<dyn Backend>>) -> Option<Arc<dyn Backend>> {
    match open() {
        Ok(b) => Some(b),
        Err(e) => {
            let required = std::env::var("OMNIFUSE_REQUIRE_DEVICE").unwrap_or_default();
            if required.split(',').any(|r| r.trim() == device || (r.trim() == "all" && !required.is_empty())) {
                panic!("{device} is required (OMNIFUSE_REQUIRE_DEVICE={required}) but unavailable: {e}");
            }
            eprintln!("skipping {device}: {e}");
            None
        }
    }
}

/// Run every dtype of `kind` on `backend` against the reference tier and fail on any
/// mismatch (and, with `require_all`, on any skip).
pub fn assert_op(backend: &dyn Backend, kind: OpKind, require_all: bool) {
    let oracle = match omnifuse_cpu::CpuBackend::reference() {
        Ok(o) => o,
        Err(e) => panic!("cannot open the reference tier: {e}"),
    };
    let (cases, seed) = (suite::cases_from_env(), suite::seed_from_env());
    let mut failures = Vec::new();
    for &dtype in kind.dtypes() {
        let r = run_op(backend, &oracle, kind, dtype, cases, seed);
        match &r.status {
            Status::Pass => eprintln!(
                "{} {kind} {dtype}: pass, {} cases, worst NMSE {:.2e} (tol {:.0e}) at {}",
                backend.name(),
                r.cases,
                r.worst_nmse,
                r.tolerance,
                r.worst_case
            ),
            Status::Skipped(why) => {
                eprintln!("{} {kind} {dtype}: skipped ({why})", backend.name());
                if require_all {
                    failures.push(format!("{kind} {dtype} skipped: {why}"));
                }
            }
            Status::Fail(why) => failures.push(format!("{kind} {dtype} FAILED after {} cases: {why}", r.cases)),
        }
    }
    assert!(failures.is_empty(), "{} conformance failures:\n{}", backend.name(), failures.join("\n"));
}

/// Instantiate the whole suite for a backend: one `#[test]` per op kind plus the
/// invalid-input table. `$open` evaluates to `Result<B>` for some `B: Backend`; pass
/// `require_all` to fail on any skipped op × dtype, `allow_skips` otherwise.
#[macro_export]
macro_rules! conformance_suite {
    ($device:literal, $open:expr, $mode:ident) => {
        #[allow(missing_docs)]
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            use $crate::omnifuse_core::op::OpKind;

            fn backend() -> Option<std::sync::Arc<dyn $crate::omnifuse_core::Backend>> {
                $crate::open_or_skip($device, || {
                    $open.map(|b| std::sync::Arc::new(b) as std::sync::Arc<dyn $crate::omnifuse_core::Backend>)
                })
            }

            fn require_all() -> bool {
                stringify!($mode) == "require_all"
            }

            $crate::conformance_suite!(@ops gemm Gemm, qgemm QGemm, layernorm LayerNorm, softmax Softmax, gelu Gelu, relu Relu,
                add Add, mul Mul, scale Scale, embedding Embedding, conv1d Conv1d, im2col Im2col, pool Pool,
                concat Concat, slice Slice, permute Permute, reshape Reshape, quantize Quantize, dequantize Dequantize,
                attention Attention, fused_attention FusedAttention);

            #[test]
            fn rejects_invalid_inputs() {
                let Some(b) = backend() else { return };
                let failures = $crate::reject::check_rejections(&*b);
                assert!(failures.is_empty(), "bad input not refused properly:\n{}", failures.join("\n"));
            }
        }
    };
    (@ops $($name:ident $kind:ident),*) => {
        $(
            #[test]
            fn $name() {
                let Some(b) = backend() else { return };
                $crate::assert_op(&*b, OpKind::$kind, require_all());
            }
        )*
    };
}
