//! A TextCNN-and-patch-embedding style pipeline built as one graph (embedding, conv1d,
//! pooling, im2col, GEMM with fused epilogue, concat, layer norm, attention, softmax), opened
//! through the registry by name and run on the fast CPU device and the reference device.

use omnifuse_core::exec::{Session, SessionOptions};
use omnifuse_core::op::{Activation, Epilogue, GemmSpec, Op, PoolKind};
use omnifuse_core::{DType, Graph, HostTensor, TensorDesc};
use omnifuse_testkit::cases::{Rng, tensor};
use omnifuse_testkit::compare::nmse;

const D: usize = 32;

fn pipeline() -> Graph {
    let mut rng = Rng::new(11);
    let mut g = Graph::new();
    // text: 12 token ids → embeddings [1, 12, 16] → conv1d width 3 → [1, 12, D]
    let ids = g.input(TensorDesc::new([1, 12], DType::I32));
    let table = g.constant(tensor(&[50, 16], DType::F32, 1.0, &mut rng));
    let emb = g.op(Op::Embedding, &[table, ids]).expect("embedding");
    let w = g.constant(tensor(&[3, 16, D], DType::F32, 0.3, &mut rng));
    let b = g.constant(tensor(&[D], DType::F32, 0.1, &mut rng));
    let text = g.op(Op::Conv1d { bias: true, stride: 1 }, &[emb, w, b]).expect("conv1d");
    let text = g.op(Op::Relu, &[text]).expect("relu");
    // image: [1, 16, 16, 3] → 4×4 patches [1, 16, 48] → GEMM with bias+GELU → [1, 16, D]
    let img = g.input(TensorDesc::new([1, 16, 16, 3], DType::F32));
    let patches = g.op(Op::Im2col { patch: 4 }, &[img]).expect("im2col");
    let pw = g.constant(tensor(&[48, D], DType::F32, 0.2, &mut rng));
    let pb = g.constant(tensor(&[D], DType::F32, 0.1, &mut rng));
    let spec = GemmSpec {
        epilogue: Epilogue { bias: true, activation: Activation::Gelu, ..Epilogue::default() },
        ..GemmSpec::default()
    };
    let image = g.op(Op::Gemm(spec), &[patches, pw, pb]).expect("patch embed");
    // fuse: concat tokens [1, 28, D], layer norm, self-attention, residual, pool, classify
    let tokens = g.op(Op::Concat { axis: 1 }, &[text, image]).expect("concat");
    let gamma = g.constant(tensor(&[D], DType::F32, 1.0, &mut rng));
    let beta = g.constant(tensor(&[D], DType::F32, 0.1, &mut rng));
    let n = g.op(Op::LayerNorm { eps: 1e-5 }, &[tokens, gamma, beta]).expect("layernorm");
    let att = g.op(Op::Attention { heads: 4, causal: false, scale: None }, &[n, n, n]).expect("attention");
    let h = g.op(Op::Add, &[att, tokens]).expect("residual");
    let pooled = g.op(Op::Pool { kind: PoolKind::Mean, axis: 1 }, &[h]).expect("pool");
    let cw = g.constant(tensor(&[D, 5], DType::F32, 0.3, &mut rng));
    let logits = g.op(Op::Gemm(GemmSpec::default()), &[pooled, cw]).expect("classifier");
    let probs = g.op(Op::Softmax, &[logits]).expect("softmax");
    g.output(probs).expect("output");
    g
}

fn run(device: &str, fuse: bool) -> Vec<f32> {
    let dev = omnifuse_registry::open(device).expect("open device");
    let s = Session::new(dev, pipeline(), SessionOptions { fuse }).expect("session");
    let ids = HostTensor::from_slice([1, 12], &[3i32, 14, 15, 9, 2, 6, 5, 35, 8, 9, 7, 9]).expect("ids");
    let img = tensor(&[1, 16, 16, 3], DType::F32, 1.0, &mut Rng::new(5));
    let out = s.run_host(&[&ids, &img]).expect("run");
    assert_eq!(out[0].desc, TensorDesc::new([1, 5], DType::F32));
    out[0].to_f32()
}

#[test]
fn pipeline_matches_across_devices_and_fusion() {
    let want = run("cpu-ref", false);
    let got = run("cpu", true);
    let sum: f32 = got.iter().sum();
    assert!((sum - 1.0).abs() < 1e-5, "softmax output sums to {sum}");
    let e = nmse(&got, &want);
    assert!(e < 1e-9, "cpu (fused) vs cpu-ref (unfused): NMSE {e}");
}

#[test]
fn an_absent_device_is_an_error_not_a_crash() {
    for name in ["opencl:9:0", "cuda:0", "hip:0", "cpu:7", "nonsense"] {
        let e = omnifuse_registry::open(name).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains(name), "{name}: {e}");
    }
}
