//! The conformance runner: for one op × dtype, generate cases with proptest (shrinking a
//! failure to a minimal case), run each on the backend under test and on the reference tier,
//! and judge the outputs. The backend's output buffer is filled with a 0xFF sentinel and
//! followed by a guard region, so unwritten elements and out-of-bounds writes both fail.

use std::cell::RefCell;

use omnifuse_core::op::OpKind;
use omnifuse_core::{Backend, DType, HostTensor, Support, Tensor, TensorDesc};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::cases::{Case, strategy};
use crate::compare::{judge, tolerance};

/// Bytes of sentinel after every output.
pub const GUARD: usize = 256;
const SENTINEL: u8 = 0xFF;

/// Outcome of one op × dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Every case passed.
    Pass,
    /// A case failed; the message holds the minimal failing case.
    Fail(String),
    /// The backend does not run this op × dtype, with its reason.
    Skipped(String),
}

/// What one op × dtype did.
#[derive(Clone, Debug)]
pub struct OpReport {
    /// The op.
    pub kind: OpKind,
    /// First-input dtype.
    pub dtype: DType,
    /// Pass, fail or skip.
    pub status: Status,
    /// Cases run.
    pub cases: u32,
    /// Worst NMSE among passing cases.
    pub worst_nmse: f64,
    /// The case that produced it.
    pub worst_case: String,
    /// The tolerance applied.
    pub tolerance: f64,
}

/// Run one case on `backend` and the `oracle`; the NMSE or why it failed.
pub fn check_case(backend: &dyn Backend, oracle: &dyn Backend, case: &Case, tol: f64) -> Result<f64, String> {
    let want = run_on(oracle, case, false).map_err(|e| format!("the reference rejected the case: {e}"))?;
    let got = run_on(backend, case, true)?;
    judge(&got, &want, tol)
}

fn run_on(b: &dyn Backend, case: &Case, guarded: bool) -> Result<HostTensor, String> {
    let err = |e: omnifuse_core::Error| format!("{}: {e}", b.name());
    let inputs: Vec<Tensor> = case.inputs.iter().map(|h| b.to_device(h)).collect::<Result<_, _>>().map_err(err)?;
    let descs: Vec<&TensorDesc> = inputs.iter().map(|t| &t.desc).collect();
    let out_desc = case.op.infer(&descs).map_err(err)?;
    let total = out_desc.bytes() + if guarded { GUARD } else { 0 };
    let buf = b.alloc(total).map_err(err)?;
    b.upload(&buf, &vec![SENTINEL; total]).map_err(err)?;
    let out = Tensor::view(buf.clone(), out_desc.clone()).map_err(err)?;
    let refs: Vec<&Tensor> = inputs.iter().collect();
    b.launch(&case.op, &refs, &out).map_err(err)?;
    b.synchronize().map_err(err)?;
    let mut all = vec![0u8; total];
    b.download(&buf, &mut all).map_err(err)?;
    if guarded {
        if let Some(i) = all[out_desc.bytes()..].iter().position(|&x| x != SENTINEL) {
            return Err(format!(
                "wrote past the end of its output: guard byte {i} after {} bytes changed",
                out_desc.bytes()
            ));
        }
        for (i, (t, h)) in inputs.iter().zip(&case.inputs).enumerate() {
            let back = b.to_host(t).map_err(err)?;
            if back.bytes() != h.bytes() {
                return Err(format!("modified its input {i}"));
            }
        }
    }
    all.truncate(out_desc.bytes());
    HostTensor::from_bytes(out_desc, all).map_err(err)
}

fn seed_bytes(seed: u64, kind: OpKind, dtype: DType) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8] = kind as u8;
    s[9] = dtype as u8;
    s
}

/// Run `cases` generated cases of `kind` × `dtype`.
pub fn run_op(
    backend: &dyn Backend,
    oracle: &dyn Backend,
    kind: OpKind,
    dtype: DType,
    cases: u32,
    seed: u64,
) -> OpReport {
    let tol = tolerance(kind, dtype);
    let mut report = OpReport {
        kind,
        dtype,
        status: Status::Pass,
        cases: 0,
        worst_nmse: 0.0,
        worst_case: String::new(),
        tolerance: tol,
    };
    if let Support::No(reason) = backend.supports(kind, dtype) {
        report.status = Status::Skipped(reason);
        return report;
    }
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 256, ..Config::default() };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed, kind, dtype)));
    let worst = RefCell::new((0.0f64, String::new(), 0u32));
    let result = runner.run(&strategy(kind, dtype), |case| {
        let nmse = check_case(backend, oracle, &case, tol).map_err(TestCaseError::fail)?;
        let mut w = worst.borrow_mut();
        w.2 += 1;
        if nmse > w.0 || w.1.is_empty() {
            w.0 = nmse;
            w.1 = case.label();
        }
        Ok(())
    });
    let (nmse, label, n) = worst.into_inner();
    report.worst_nmse = nmse;
    report.worst_case = label;
    report.cases = n;
    if let Err(e) = result {
        report.status = Status::Fail(match e {
            TestError::Fail(why, case) => format!("{why}\n    minimal case: {}", case.label()),
            TestError::Abort(why) => format!("aborted: {why}"),
        });
    }
    report
}

/// Cases per op × dtype: `OMNIFUSE_CASES` or 256.
pub fn cases_from_env() -> u32 {
    std::env::var("OMNIFUSE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// Seed: `OMNIFUSE_SEED` or a fixed default, so CI is reproducible.
pub fn seed_from_env() -> u64 {
    std::env::var("OMNIFUSE_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x0F05E)
}

/// Every op × dtype pair of the op set, in table order.
pub fn all_pairs() -> Vec<(OpKind, DType)> {
    OpKind::ALL.iter().flat_map(|&k| k.dtypes().iter().map(move |&d| (k, d))).collect()
}
