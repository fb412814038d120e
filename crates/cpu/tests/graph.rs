//! Whole-graph execution on the CPU backend: a transformer-style MLP block run through a
//! session with and without the fusion pass, on both tiers, must agree; the memory planner
//! must need less than one buffer per value.

use std::sync::Arc;

use omnifuse_core::exec::{Session, SessionOptions};
use omnifuse_core::op::{GemmSpec, Op};
use omnifuse_core::{Backend, DType, Graph, HostTensor, TensorDesc};
use omnifuse_cpu::CpuBackend;
use omnifuse_testkit::cases::{Rng, tensor};
use omnifuse_testkit::compare::nmse;

fn mlp_block(tokens: usize, width: usize, hidden: usize, layers: usize) -> Graph {
    let mut rng = Rng::new(7);
    let mut g = Graph::new();
    let x = g.input(TensorDesc::new([tokens, width], DType::F32));
    let mut h = x;
    for _ in 0..layers {
        let gamma = g.constant(tensor(&[width], DType::F32, 1.0, &mut rng));
        let beta = g.constant(tensor(&[width], DType::F32, 0.1, &mut rng));
        let w1 = g.constant(tensor(&[width, hidden], DType::F32, 0.1, &mut rng));
        let b1 = g.constant(tensor(&[hidden], DType::F32, 0.1, &mut rng));
        let w2 = g.constant(tensor(&[hidden, width], DType::F32, 0.1, &mut rng));
        let b2 = g.constant(tensor(&[width], DType::F32, 0.1, &mut rng));
        let n = g.op(Op::LayerNorm { eps: 1e-5 }, &[h, gamma, beta]).expect("layernorm");
        let up = g.op(Op::Gemm(GemmSpec::default()), &[n, w1]).expect("gemm");
        let up = g.op(Op::Add, &[up, b1]).expect("bias");
        let up = g.op(Op::Gelu, &[up]).expect("gelu");
        let down = g.op(Op::Gemm(GemmSpec::default()), &[up, w2]).expect("gemm");
        let down = g.op(Op::Add, &[down, b2]).expect("bias");
        h = g.op(Op::Add, &[down, h]).expect("residual");
    }
    g.output(h).expect("output");
    g
}

fn run(backend: Arc<dyn Backend>, g: &Graph, fuse: bool, x: &HostTensor) -> (Vec<f32>, Session) {
    let s = Session::new(backend, g.clone(), SessionOptions { fuse }).expect("session");
    let out = s.run_host(&[x]).expect("run");
    (out[0].to_f32(), s)
}

#[test]
fn fused_and_unfused_sessions_agree_on_both_tiers() {
    let g = mlp_block(37, 64, 256, 3);
    let x = tensor(&[37, 64], DType::F32, 1.0, &mut Rng::new(1));
    let fast: Arc<dyn Backend> = Arc::new(CpuBackend::fast().expect("fast"));
    let reference: Arc<dyn Backend> = Arc::new(CpuBackend::reference().expect("ref"));
    let (want, unfused) = run(reference.clone(), &g, false, &x);
    let (ref_fused, _) = run(reference, &g, true, &x);
    let (got, fused) = run(fast, &g, true, &x);
    assert!(nmse(&ref_fused, &want) < 1e-12, "fusion changed the reference result");
    assert!(nmse(&got, &want) < 1e-9, "fast fused vs reference unfused: {}", nmse(&got, &want));
    // 3 layers × (bias + gelu on the first GEMM, bias + residual on the second) = 12 folded ops.
    assert_eq!(fused.folded(), 12);
    assert_eq!(fused.graph().nodes().len(), 3 * 3);
    assert_eq!(unfused.graph().nodes().len(), 3 * 7);
    let plan = unfused.plan();
    assert!(plan.peak_bytes * 2 < plan.naive_bytes, "planner saved too little: {plan:?}");
}

#[test]
fn session_rejects_wrong_inputs_with_a_clear_error() {
    let g = mlp_block(4, 8, 16, 1);
    let s = Session::new(Arc::new(CpuBackend::fast().expect("fast")), g, SessionOptions::default()).expect("session");
    let wrong = HostTensor::zeros(TensorDesc::new([5, 8], DType::F32)).expect("zeros");
    let e = s.run_host(&[&wrong]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("f32[5, 8]") && e.contains("f32[4, 8]"), "{e}");
    let e = s.run_host(&[]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("expected 1 input"), "{e}");
}

#[test]
fn buffers_of_another_device_are_refused() {
    let a = CpuBackend::fast().expect("a");
    let b = CpuBackend::fast().expect("b");
    let t = a.to_device(&HostTensor::from_slice([2], &[1.0f32, 2.0]).expect("t")).expect("upload");
    let e = b.run_op(&Op::Relu, &[&t]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("not on cpu"), "{e}");
    let out = a.empty(&TensorDesc::new([2], DType::F32)).expect("out");
    let e = a.launch(&Op::Relu, &[&out], &out).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("in-place"), "{e}");
}
