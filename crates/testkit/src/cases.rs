//! Case generators: for each op and dtype, a proptest strategy over shapes (1, primes,
//! non-multiples of tile sizes, a few hundred wide) and op parameters, with values drawn
//! from a seeded generator so every case can be replayed from its printed label.

use half::{bf16, f16};
use omnifuse_core::op::{Activation, Epilogue, GemmSpec, Op, OpKind, PoolKind, QGemmSpec};
use omnifuse_core::{AttentionSpec, DType, HostTensor, MaskMode};
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

/// One generated test case: an op and its host inputs.
#[derive(Clone, Debug)]
pub struct Case {
    /// The op.
    pub op: Op,
    /// Its inputs.
    pub inputs: Vec<HostTensor>,
}

impl Case {
    /// A one-line description: the op and the input descriptions.
    pub fn label(&self) -> String {
        let ins: Vec<String> = self
            .inputs
            .iter()
            .map(|t| if t.desc.numel() <= 8 { format!("{}={:?}", t.desc, t.to_f32()) } else { t.desc.to_string() })
            .collect();
        format!("{:?} on ({})", self.op, ins.join(", "))
    }
}

/// SplitMix64: small, seeded, good enough for test data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    /// Uniform integer in `lo..=hi`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo + 1) as u64)) as i64
    }
}

/// A tensor of `dtype` with values uniform in `[-range, range]` (integers: the dtype's range
/// clipped to `range`).
pub fn tensor(shape: &[usize], dtype: DType, range: f32, rng: &mut Rng) -> HostTensor {
    let n: usize = shape.iter().product();
    let r = range.max(1.0) as i64;
    let t = match dtype {
        DType::F32 => HostTensor::from_slice(shape, &(0..n).map(|_| rng.uniform(-range, range)).collect::<Vec<f32>>()),
        DType::F16 => HostTensor::from_slice(
            shape,
            &(0..n).map(|_| f16::from_f32(rng.uniform(-range, range))).collect::<Vec<_>>(),
        ),
        DType::BF16 => HostTensor::from_slice(
            shape,
            &(0..n).map(|_| bf16::from_f32(rng.uniform(-range, range))).collect::<Vec<_>>(),
        ),
        DType::I8 => {
            HostTensor::from_slice(shape, &(0..n).map(|_| rng.int(-r.min(127), r.min(127)) as i8).collect::<Vec<_>>())
        }
        DType::I32 => HostTensor::from_slice(shape, &(0..n).map(|_| rng.int(-r, r) as i32).collect::<Vec<_>>()),
    };
    t.expect("generated element count matches the shape")
}

/// Interesting dimension sizes: small, 1, primes and near-tile sizes, a few hundred.
pub fn dim() -> BoxedStrategy<usize> {
    prop_oneof![
        4 => 1..=9usize,
        3 => prop::sample::select(vec![1usize, 2, 3, 5, 7, 11, 13, 16, 17, 31, 32, 33, 48, 63, 64, 65]),
        1 => prop::sample::select(vec![97usize, 127, 128, 129, 191, 257]),
    ]
    .boxed()
}

fn small() -> BoxedStrategy<usize> {
    prop_oneof![3 => 1..=6usize, 1 => prop::sample::select(vec![7usize, 11, 13, 17])].boxed()
}

fn shape(max_rank: usize) -> BoxedStrategy<Vec<usize>> {
    // Leading axes small; the last axis interesting (SIMD tails, wide rows).
    (prop::collection::vec(small(), 0..max_rank), dim())
        .prop_map(|(mut lead, last)| {
            lead.push(last);
            lead
        })
        .boxed()
}

fn activation() -> BoxedStrategy<Activation> {
    prop::sample::select(vec![Activation::None, Activation::Relu, Activation::Gelu]).boxed()
}

fn gemm(dtype: DType) -> BoxedStrategy<Case> {
    let int = dtype == DType::I8;
    (
        (0..=3usize, dim(), dim(), dim()),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        (prop::sample::select(vec![1.0f32, 0.5, -1.25]), any::<bool>(), activation(), any::<bool>()),
        any::<u64>(),
    )
        .prop_map(move |((batch, m, n, mut k), (ta, tb, shared), (scale, bias, act, residual), seed)| {
            // Keep the reference affordable: at most ~4M multiply-adds per case.
            while batch.max(1) * m * n * k > 4_000_000 && k > 1 {
                k /= 2;
            }
            let mut rng = Rng::new(seed);
            let epilogue = if int { Epilogue::default() } else { Epilogue { scale, bias, activation: act, residual } };
            let lead = |d: [usize; 2]| if batch > 0 { vec![batch, d[0], d[1]] } else { d.to_vec() };
            let a = tensor(&lead(if ta { [k, m] } else { [m, k] }), dtype, 2.0, &mut rng);
            let bshape = if tb { [n, k] } else { [k, n] };
            let b = tensor(&if shared || batch == 0 { bshape.to_vec() } else { lead(bshape) }, dtype, 2.0, &mut rng);
            let out_shape = lead([m, n]);
            let mut inputs = vec![a, b];
            if epilogue.bias {
                inputs.push(tensor(&[n], dtype, 2.0, &mut rng));
            }
            if epilogue.residual {
                inputs.push(tensor(&out_shape, dtype, 2.0, &mut rng));
            }
            Case { op: Op::Gemm(GemmSpec { trans_a: ta, trans_b: tb, epilogue }), inputs }
        })
        .boxed()
}

/// INT8 GEMM with the fused dequantising epilogue: `A` as floats (quantised per row by the
/// op) or as i8 with per-row or per-tensor scales, full-range i8 weights with per-channel
/// scales, every epilogue, and f32 or requantised i8 output.
fn qgemm(dtype: DType) -> BoxedStrategy<Case> {
    let int = dtype == DType::I8;
    (
        (0..=3usize, dim(), dim(), dim()),
        (any::<bool>(), prop::sample::select(vec![None, Some(0.02f32), Some(0.5)])),
        (prop::sample::select(vec![1.0f32, 0.5, -1.25]), any::<bool>(), activation(), any::<bool>()),
        any::<u64>(),
    )
        .prop_map(move |((batch, m, n, mut k), (per_row, requant), (scale, bias, act, residual), seed)| {
            while batch.max(1) * m * n * k > 4_000_000 && k > 1 {
                k /= 2;
            }
            let mut rng = Rng::new(seed);
            let epilogue = Epilogue { scale, bias, activation: act, residual };
            let lead = |d: [usize; 2]| if batch > 0 { vec![batch, d[0], d[1]] } else { d.to_vec() };
            let rows = batch.max(1) * m;
            let a = tensor(&lead([m, k]), dtype, if int { 127.0 } else { 3.0 }, &mut rng);
            let b = tensor(&[n, k], DType::I8, 127.0, &mut rng);
            let positive = |len: usize, rng: &mut Rng| {
                let v: Vec<f32> = (0..len).map(|_| rng.uniform(0.001, 0.02)).collect();
                HostTensor::from_slice([len], &v).expect("scales match their shape")
            };
            let mut inputs = vec![a, b, positive(n, &mut rng)];
            if int {
                inputs.push(positive(if per_row { rows } else { 1 }, &mut rng));
            }
            if bias {
                inputs.push(tensor(&[n], DType::F32, 2.0, &mut rng));
            }
            if residual {
                inputs.push(tensor(&lead([m, n]), DType::F32, 2.0, &mut rng));
            }
            Case { op: Op::QGemm(QGemmSpec { epilogue, requant }), inputs }
        })
        .boxed()
}

fn unary(kind: OpKind, dtype: DType) -> BoxedStrategy<Case> {
    (shape(3), prop::sample::select(vec![1.0f32, 4.0, 30.0]), any::<u64>())
        .prop_map(move |(s, range, seed)| {
            let mut rng = Rng::new(seed);
            let op = match kind {
                OpKind::Softmax => Op::Softmax,
                OpKind::Gelu => Op::Gelu,
                OpKind::Relu => Op::Relu,
                _ => Op::Scale { factor: rng.uniform(-3.0, 3.0) },
            };
            Case { op, inputs: vec![tensor(&s, dtype, range, &mut rng)] }
        })
        .boxed()
}

fn fused_attention(dtype: DType) -> BoxedStrategy<Case> {
    let heads = prop::sample::select(vec![(1usize, 1usize), (2, 1), (2, 2), (4, 2), (4, 1), (3, 3)]);
    let dh = prop::sample::select(vec![1usize, 8, 16, 32, 64, 80, 128]);
    let mask = prop::sample::select(MaskMode::ALL.to_vec());
    (
        (1..=4usize, heads, dh),
        (1..=4usize, mask, any::<bool>(), 0..3usize),
        (prop::sample::select(vec![1.0f32, 2.0, 30.0]), any::<u64>()),
    )
        .prop_map(move |((batch, (h, hkv), dh), (m, mask, bias, shape_kind), (range, seed))| {
            let mut rng = Rng::new(seed);
            // shape_kind: 0 = self-attention (Lq = Lk), 1 = independent lengths, 2 = decode steps
            // (Lq ≤ 4 against a longer cache: the few-query kernel path)
            let lens: Vec<(usize, usize)> = (0..batch)
                .map(|_| {
                    let lk = rng.int(0, 40) as usize;
                    match shape_kind {
                        0 => (lk, lk),
                        1 => (rng.int(0, 40) as usize, lk),
                        _ => (rng.int(0, 4) as usize, lk + rng.int(0, 40) as usize),
                    }
                })
                .collect();
            let (tq, tk) = lens.iter().fold((0, 0), |(a, b), &(q, k)| (a + q, b + k));
            let cu = |pick: fn(&(usize, usize)) -> usize| {
                let mut v = vec![0i32];
                for l in &lens {
                    v.push(v[v.len() - 1] + pick(l) as i32);
                }
                HostTensor::from_slice([batch + 1], &v).expect("cu_seqlens match their shape")
            };
            let (cu_q, cu_k) = (cu(|l| l.0), cu(|l| l.1));
            // Modality ids in runs, as a request's inputs are laid out.
            let mut runs = |n: usize| -> Vec<i8> {
                let mut ids = Vec::with_capacity(n);
                while ids.len() < n {
                    let id = rng.int(0, m as i64 - 1) as i8;
                    let run = rng.int(1, 12) as usize;
                    ids.extend(std::iter::repeat_n(id, run.min(n - ids.len())));
                }
                ids
            };
            let (mq, mk) = (runs(tq), runs(tk));
            // Large-magnitude logits come from large queries (up to ×30: logits in the
            // hundreds, which overflow exp without the running max); keys stay in ±2 so the
            // f32 dot products are not dominated by cancellation.
            let mut inputs = vec![
                tensor(&[tq, h, dh], dtype, range, &mut rng),
                tensor(&[tk, hkv, dh], dtype, 2.0, &mut rng),
                tensor(&[tk, hkv, dh], dtype, 2.0, &mut rng),
                cu_q,
                cu_k,
                HostTensor::from_slice([tq], &mq).expect("ids match"),
                HostTensor::from_slice([tk], &mk).expect("ids match"),
            ];
            if mask == MaskMode::Pairs {
                let pairs: Vec<i8> = (0..m * m).map(|_| rng.int(0, 1) as i8).collect();
                inputs.push(HostTensor::from_slice([m, m], &pairs).expect("pairs match"));
            }
            if bias {
                inputs.push(tensor(&[h, m, m], DType::F32, 3.0, &mut rng));
            }
            let spec = AttentionSpec { heads: h, kv_heads: hkv, modalities: m, mask, bias, scale: None };
            Case { op: Op::FusedAttention(spec), inputs }
        })
        .boxed()
}

/// The strategy for `kind` with first-input dtype `dtype`.
pub fn strategy(kind: OpKind, dtype: DType) -> BoxedStrategy<Case> {
    match kind {
        OpKind::Gemm => gemm(dtype),
        OpKind::QGemm => qgemm(dtype),
        OpKind::Softmax | OpKind::Gelu | OpKind::Relu | OpKind::Scale => unary(kind, dtype),
        OpKind::LayerNorm => (shape(3), any::<u64>())
            .prop_map(move |(s, seed)| {
                let mut rng = Rng::new(seed);
                let n = *s.last().unwrap_or(&1);
                let x = tensor(&s, dtype, 3.0, &mut rng);
                let g = tensor(&[n], dtype, 1.5, &mut rng);
                let b = tensor(&[n], dtype, 1.0, &mut rng);
                Case { op: Op::LayerNorm { eps: 1e-5 }, inputs: vec![x, g, b] }
            })
            .boxed(),
        OpKind::Add | OpKind::Mul => (shape(4), any::<u64>())
            .prop_map(move |(s, seed)| {
                let mut rng = Rng::new(seed);
                let keep = rng.int(0, s.len() as i64 - 1) as usize;
                let a = tensor(&s, dtype, 100.0, &mut rng);
                let b = tensor(&s[keep..], dtype, 100.0, &mut rng);
                Case { op: if kind == OpKind::Add { Op::Add } else { Op::Mul }, inputs: vec![a, b] }
            })
            .boxed(),
        OpKind::Embedding => (1..=300usize, dim(), shape(2), any::<u64>())
            .prop_map(move |(v, d, ids_shape, seed)| {
                let mut rng = Rng::new(seed);
                let table = tensor(&[v, d], dtype, 2.0, &mut rng);
                let n: usize = ids_shape.iter().product();
                let ids: Vec<i32> = (0..n).map(|_| rng.int(0, v as i64 - 1) as i32).collect();
                let ids = HostTensor::from_slice(ids_shape.as_slice(), &ids).expect("ids match their shape");
                Case { op: Op::Embedding, inputs: vec![table, ids] }
            })
            .boxed(),
        OpKind::Conv1d => (
            (1..=3usize, 1..=70usize, 1..=40usize),
            (prop::sample::select(vec![1usize, 2, 3, 4, 5, 7]), 1..=40usize, any::<bool>()),
            (1..=3usize, any::<u64>()),
        )
            .prop_map(move |((b, l, cin), (w, cout, bias), (stride, seed))| {
                let mut rng = Rng::new(seed);
                let mut inputs =
                    vec![tensor(&[b, l, cin], dtype, 2.0, &mut rng), tensor(&[w, cin, cout], dtype, 1.0, &mut rng)];
                if bias {
                    inputs.push(tensor(&[cout], dtype, 1.0, &mut rng));
                }
                Case { op: Op::Conv1d { bias, stride }, inputs }
            })
            .boxed(),
        OpKind::Im2col => ((1..=2usize, 1..=5usize), (1..=5usize, 1..=5usize, 1..=4usize), any::<u64>())
            .prop_map(move |((b, p), (ph, pw, c), seed)| {
                let mut rng = Rng::new(seed);
                Case {
                    op: Op::Im2col { patch: p },
                    inputs: vec![tensor(&[b, ph * p, pw * p, c], dtype, 100.0, &mut rng)],
                }
            })
            .boxed(),
        OpKind::Pool => (shape(4), any::<bool>(), any::<u64>())
            .prop_map(move |(s, max, seed)| {
                let mut rng = Rng::new(seed);
                let axis = rng.int(0, s.len() as i64 - 1) as usize;
                let kind = if max { PoolKind::Max } else { PoolKind::Mean };
                Case { op: Op::Pool { kind, axis }, inputs: vec![tensor(&s, dtype, 3.0, &mut rng)] }
            })
            .boxed(),
        OpKind::Concat => (shape(3), 2..=4usize, any::<u64>())
            .prop_map(move |(s, parts, seed)| {
                let mut rng = Rng::new(seed);
                let axis = rng.int(0, s.len() as i64 - 1) as usize;
                let inputs = (0..parts)
                    .map(|_| {
                        let mut si = s.clone();
                        si[axis] = rng.int(0, 9) as usize;
                        tensor(&si, dtype, 100.0, &mut rng)
                    })
                    .collect();
                Case { op: Op::Concat { axis }, inputs }
            })
            .boxed(),
        OpKind::Slice => (shape(4), any::<u64>())
            .prop_map(move |(s, seed)| {
                let mut rng = Rng::new(seed);
                let axis = rng.int(0, s.len() as i64 - 1) as usize;
                let start = rng.int(0, s[axis] as i64) as usize;
                let end = rng.int(start as i64, s[axis] as i64) as usize;
                Case { op: Op::Slice { axis, start, end }, inputs: vec![tensor(&s, dtype, 100.0, &mut rng)] }
            })
            .boxed(),
        OpKind::Permute => (shape(4), any::<u64>())
            .prop_map(move |(s, seed)| {
                let mut rng = Rng::new(seed);
                let mut perm: Vec<usize> = (0..s.len()).collect();
                for i in (1..perm.len()).rev() {
                    let j = rng.int(0, i as i64) as usize;
                    perm.swap(i, j);
                }
                Case { op: Op::Permute { perm }, inputs: vec![tensor(&s, dtype, 100.0, &mut rng)] }
            })
            .boxed(),
        OpKind::Reshape => (shape(4), any::<u64>())
            .prop_map(move |(s, seed)| {
                let mut rng = Rng::new(seed);
                // Regroup the dims: merge a random adjacent pair, or split one into its factors.
                let mut to = s.clone();
                let i = rng.int(0, s.len() as i64 - 1) as usize;
                if i + 1 < to.len() && rng.int(0, 1) == 0 {
                    let merged = to[i] * to[i + 1];
                    to.splice(i..i + 2, [merged]);
                } else if let Some(f) = (2..to[i]).find(|f| to[i] % f == 0) {
                    let rest = to[i] / f;
                    to.splice(i..=i, [f, rest]);
                } else {
                    to.push(1);
                }
                Case { op: Op::Reshape { shape: to }, inputs: vec![tensor(&s, dtype, 100.0, &mut rng)] }
            })
            .boxed(),
        OpKind::Quantize => (shape(3), prop::sample::select(vec![0.01f32, 0.05, 0.5]), any::<u64>())
            .prop_map(move |(s, scale, seed)| {
                let mut rng = Rng::new(seed);
                Case { op: Op::Quantize { scale }, inputs: vec![tensor(&s, dtype, 2.0, &mut rng)] }
            })
            .boxed(),
        OpKind::Dequantize => (shape(3), prop::sample::select(vec![0.01f32, 0.05, 0.5]), any::<u64>())
            .prop_map(move |(s, scale, seed)| {
                let mut rng = Rng::new(seed);
                Case { op: Op::Dequantize { scale }, inputs: vec![tensor(&s, dtype, 100_000.0, &mut rng)] }
            })
            .boxed(),
        OpKind::Attention => (
            (1..=2usize, 1..=4usize, prop::sample::select(vec![1usize, 3, 8, 16, 32, 64])),
            (1..=40usize, 1..=40usize, any::<bool>()),
            any::<u64>(),
        )
            .prop_map(move |((b, h, dh), (sq, sk, causal), seed)| {
                let mut rng = Rng::new(seed);
                let q = tensor(&[b, sq, h * dh], dtype, 2.0, &mut rng);
                let k = tensor(&[b, sk, h * dh], dtype, 2.0, &mut rng);
                let v = tensor(&[b, sk, h * dh], dtype, 2.0, &mut rng);
                Case { op: Op::Attention { heads: h, causal, scale: None }, inputs: vec![q, k, v] }
            })
            .boxed(),
        OpKind::FusedAttention => fused_attention(dtype),
    }
}
