//! Bad input, per op: shapes, dtypes and parameters that must be refused with an error naming
//! the problem — through `launch` on the backend, not only at graph build time.

use omnifuse_core::op::{Epilogue, GemmSpec, Op, OpKind, PoolKind, QGemmSpec};
use omnifuse_core::{AttentionSpec, Backend, DType, HostTensor, MaskMode, Tensor, TensorDesc};

/// One invalid call and a fragment its error message must contain.
pub struct Rejection {
    /// The op.
    pub op: Op,
    /// Input descriptions (filled with zeros).
    pub inputs: Vec<TensorDesc>,
    /// Expected fragment of the message.
    pub expect: &'static str,
}

fn r(op: Op, inputs: Vec<TensorDesc>, expect: &'static str) -> Rejection {
    Rejection { op, inputs, expect }
}

fn f(shape: &[usize]) -> TensorDesc {
    TensorDesc::new(shape, DType::F32)
}

fn t(shape: &[usize], d: DType) -> TensorDesc {
    TensorDesc::new(shape, d)
}

/// Invalid calls covering every op kind.
pub fn rejections() -> Vec<Rejection> {
    let gemm = Op::Gemm(GemmSpec::default());
    let gemm_bias =
        Op::Gemm(GemmSpec { epilogue: Epilogue { bias: true, ..Epilogue::default() }, ..GemmSpec::default() });
    let gemm_i8_ep =
        Op::Gemm(GemmSpec { epilogue: Epilogue { scale: 2.0, ..Epilogue::default() }, ..GemmSpec::default() });
    let qgemm = Op::QGemm(QGemmSpec::default());
    let i8_ = DType::I8;
    vec![
        r(qgemm.clone(), vec![f(&[2, 3]), t(&[5, 4], i8_), f(&[5])], "inner dimensions differ"),
        r(qgemm.clone(), vec![f(&[2, 3]), f(&[5, 3]), f(&[5])], "dtype mismatch"),
        r(qgemm.clone(), vec![f(&[2, 3]), t(&[5, 3], i8_), f(&[4])], "b_scale"),
        r(qgemm.clone(), vec![t(&[2, 3], i8_), t(&[5, 3], i8_), f(&[5]), f(&[3])], "a_scale"),
        r(qgemm.clone(), vec![t(&[2, 3], i8_), t(&[5, 3], i8_), f(&[5])], "expected 4 input"),
        r(qgemm.clone(), vec![t(&[2, 3], DType::I32), t(&[5, 3], i8_), f(&[5])], "dtype mismatch"),
        r(
            Op::QGemm(QGemmSpec { requant: Some(0.0), ..QGemmSpec::default() }),
            vec![f(&[2, 3]), t(&[5, 3], i8_), f(&[5])],
            "requant",
        ),
        r(gemm.clone(), vec![f(&[2, 3]), f(&[4, 5])], "inner dimensions differ"),
        r(gemm.clone(), vec![f(&[2, 3]), t(&[3, 5], DType::F16)], "dtype mismatch"),
        r(gemm.clone(), vec![f(&[6]), f(&[6, 2])], "rank"),
        r(gemm.clone(), vec![f(&[2, 4, 3]), f(&[3, 3, 5])], "same batch"),
        r(gemm_bias, vec![f(&[2, 3]), f(&[3, 5]), f(&[4])], "bias"),
        r(gemm_i8_ep, vec![t(&[2, 3], DType::I8), t(&[3, 5], DType::I8)], "i8 GEMM"),
        r(gemm, vec![t(&[2, 3], DType::I32), t(&[3, 5], DType::I32)], "dtype mismatch"),
        r(Op::LayerNorm { eps: 1e-5 }, vec![f(&[2, 8]), f(&[7]), f(&[8])], "gamma"),
        r(Op::LayerNorm { eps: -1.0 }, vec![f(&[2, 8]), f(&[8]), f(&[8])], "eps"),
        r(Op::Softmax, vec![t(&[4], DType::I32)], "dtype mismatch"),
        r(Op::Gelu, vec![t(&[4], DType::I8)], "dtype mismatch"),
        r(Op::Relu, vec![f(&[4]), f(&[4])], "expected 1 input"),
        r(Op::Add, vec![f(&[2, 3]), f(&[2])], "suffix"),
        r(Op::Mul, vec![f(&[2, 3]), t(&[3], DType::BF16)], "dtype mismatch"),
        r(Op::Scale { factor: f32::NAN }, vec![f(&[3])], "finite"),
        r(Op::Embedding, vec![f(&[10, 4]), f(&[3])], "ids"),
        r(Op::Embedding, vec![f(&[10]), t(&[3], DType::I32)], "rank"),
        r(Op::Conv1d { bias: false, stride: 1 }, vec![f(&[1, 9, 4]), f(&[3, 5, 8])], "Cin"),
        r(Op::Conv1d { bias: true, stride: 2 }, vec![f(&[1, 9, 4]), f(&[3, 4, 8])], "expected 3 input"),
        r(Op::Conv1d { bias: false, stride: 0 }, vec![f(&[1, 9, 4]), f(&[3, 4, 8])], "stride"),
        r(Op::Im2col { patch: 4 }, vec![f(&[1, 10, 8, 3])], "divisible"),
        r(Op::Im2col { patch: 0 }, vec![f(&[1, 8, 8, 3])], "divisible"),
        r(Op::Pool { kind: PoolKind::Mean, axis: 3 }, vec![f(&[2, 3])], "out of range"),
        r(Op::Pool { kind: PoolKind::Max, axis: 0 }, vec![f(&[0, 3])], "empty"),
        r(Op::Concat { axis: 1 }, vec![f(&[2, 3]), f(&[3, 3])], "except along axis 1"),
        r(Op::Concat { axis: 0 }, vec![f(&[2, 3])], "2 or more"),
        r(Op::Slice { axis: 1, start: 2, end: 9 }, vec![f(&[2, 3])], "does not fit"),
        r(Op::Permute { perm: vec![0, 0] }, vec![f(&[2, 3])], "not a permutation"),
        r(Op::Reshape { shape: vec![4, 2] }, vec![f(&[2, 3])], "has 6 elements"),
        r(Op::Quantize { scale: 0.0 }, vec![f(&[3])], "positive"),
        r(Op::Quantize { scale: 1.0 }, vec![t(&[3], DType::I32)], "dtype mismatch"),
        r(Op::Dequantize { scale: 1.0 }, vec![f(&[3])], "dtype mismatch"),
        r(
            Op::Attention { heads: 3, causal: false, scale: None },
            vec![f(&[1, 4, 8]), f(&[1, 4, 8]), f(&[1, 4, 8])],
            "multiple of heads",
        ),
        r(
            Op::Attention { heads: 2, causal: false, scale: None },
            vec![f(&[1, 4, 8]), f(&[2, 4, 8]), f(&[2, 4, 8])],
            "to match q",
        ),
        r(
            Op::FusedAttention(fused(3, 2, MaskMode::Full, false)),
            fused_inputs(3, 2, 2, false, false),
            "multiple of kv_heads",
        ),
        r(
            Op::FusedAttention(fused(2, 2, MaskMode::Pairs, false)),
            fused_inputs(2, 2, 2, false, false),
            "expected 8 input",
        ),
        r(Op::FusedAttention(fused(2, 2, MaskMode::Full, true)), fused_inputs(2, 2, 3, false, true), "bias"),
        r(Op::FusedAttention(fused(2, 1, MaskMode::Full, false)), fused_inputs(2, 2, 2, false, false), "k is"),
    ]
}

fn fused(heads: usize, kv_heads: usize, mask: MaskMode, bias: bool) -> AttentionSpec {
    AttentionSpec { heads, kv_heads, modalities: 2, mask, bias, scale: None }
}

/// Inputs of a 5-token, one-sequence fused attention with `m` modalities in its bias.
fn fused_inputs(h: usize, hkv: usize, m: usize, pairs: bool, bias: bool) -> Vec<TensorDesc> {
    let mut v = vec![
        f(&[5, h, 8]),
        f(&[5, hkv, 8]),
        f(&[5, hkv, 8]),
        t(&[2], DType::I32),
        t(&[2], DType::I32),
        t(&[5], DType::I8),
        t(&[5], DType::I8),
    ];
    if pairs {
        v.push(t(&[m, m], DType::I8));
    }
    if bias {
        v.push(f(&[h, m, m]));
    }
    v
}

/// Launch every rejection on `backend`; returns the failures (calls that were accepted, or
/// errors that do not name the problem). An empty list means every op refused its bad input.
pub fn check_rejections(backend: &dyn Backend) -> Vec<String> {
    let mut failures = Vec::new();
    let mut covered: Vec<OpKind> = Vec::new();
    for case in rejections() {
        covered.push(case.op.kind());
        let made: Result<Vec<Tensor>, _> =
            case.inputs.iter().map(|d| HostTensor::zeros(d.clone()).and_then(|h| backend.to_device(&h))).collect();
        let result = made.and_then(|ins| {
            let refs: Vec<&Tensor> = ins.iter().collect();
            // The output is allocated as if the call were valid, so the check is the backend's.
            let out = backend.empty(&TensorDesc::new([1], DType::F32))?;
            backend.launch(&case.op, &refs, &out)
        });
        match result {
            Ok(()) => failures.push(format!("{:?} on {:?} was accepted", case.op, case.inputs)),
            Err(e) => {
                let msg = e.to_string();
                if !msg.contains(case.expect) || !msg.contains(case.op.name()) {
                    failures.push(format!(
                        "{:?}: message '{msg}' should name the op and contain '{}'",
                        case.op, case.expect
                    ));
                }
            }
        }
    }
    // A runtime error that only data can reveal: an embedding id outside the table.
    let bad_id = (|| {
        let table = backend.to_device(&HostTensor::zeros(f(&[4, 2]))?)?;
        let ids = backend.to_device(&HostTensor::from_slice([2], &[1i32, 9])?)?;
        backend.run_op(&Op::Embedding, &[&table, &ids]).map(|_| ())
    })();
    match bad_id {
        Ok(()) => failures.push("embedding with id 9 in a table of 4 rows was accepted".into()),
        Err(e) if !e.to_string().contains("id 9") => failures.push(format!("embedding error '{e}' should name id 9")),
        Err(_) => {}
    }
    // Packed-batch errors only the data reveals: bad cu_seqlens, a modality id out of range.
    let spec = fused(1, 1, MaskMode::Full, false);
    for (cu, ids, want) in [([0i32, 3], [0i8, 1, 0, 1, 0], "ends at"), ([0, 5], [0, 1, 2, 1, 0], "modality_q[2] is 2")]
    {
        let made = (|| {
            let x = HostTensor::zeros(f(&[5, 1, 8]))?;
            let ins = [
                backend.to_device(&x)?,
                backend.to_device(&x)?,
                backend.to_device(&x)?,
                backend.to_device(&HostTensor::from_slice([2], &cu)?)?,
                backend.to_device(&HostTensor::from_slice([2], &[0i32, 5])?)?,
                backend.to_device(&HostTensor::from_slice([5], &ids)?)?,
                backend.to_device(&HostTensor::from_slice([5], &[0i8; 5])?)?,
            ];
            let refs: Vec<&Tensor> = ins.iter().collect();
            backend.run_op(&Op::FusedAttention(spec), &refs).map(|_| ())
        })();
        match made {
            Ok(()) => failures.push(format!("fused_attention accepted cu {cu:?} / ids {ids:?}")),
            Err(e) if !e.to_string().contains(want) => {
                failures.push(format!("fused_attention error '{e}' should say '{want}'"))
            }
            Err(_) => {}
        }
    }
    for k in OpKind::ALL {
        if !covered.contains(&k) {
            failures.push(format!("no rejection case covers {k}"));
        }
    }
    failures
}
