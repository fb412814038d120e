//! `omnifuse kernels --op attention`: the fused cross-modal attention on a packed batch, next
//! to the unfused path on the same device in the same run — per sequence, QKᵀ as a batched
//! GEMM into a materialised `[H, L, L]` score tensor, the mask (and pair bias) added, softmax,
//! and a second GEMM with V — with ours, the peer and (on the CPU) the peak probe interleaved
//! round by round, medians reported, and both outputs compared.

use std::process::ExitCode;

use omnifuse_core::op::{Epilogue, GemmSpec};
use omnifuse_core::{AttentionSpec, Backend, DType, Error, HostTensor, MaskMode, Op, Result, Tensor, TensorDesc};
use omnifuse_testkit::cases::{Rng, tensor};
use serde_json::json;

use crate::timing;

/// What to run, from the `kernels` arguments.
pub struct AttentionBench {
    /// Sequence lengths of the packed batch.
    pub seqlens: Vec<usize>,
    /// Heads.
    pub heads: usize,
    /// Head width.
    pub head_dim: usize,
    /// Mask mode.
    pub mask: MaskMode,
    /// Add a per-modality-pair bias.
    pub bias: bool,
    /// Storage dtype.
    pub dtype: DType,
    /// Timed rounds (0 = about three seconds' worth).
    pub reps: usize,
    /// Print JSON.
    pub json: bool,
}

/// Modalities in the generated batch: each sequence is three equal runs (text, image, audio).
const M: usize = 3;

fn modality(i: usize, len: usize) -> i8 {
    (i * M / len.max(1)) as i8
}

/// The allowed-pair matrix used for `--mask pairs`: everything but audio → text.
fn pairs() -> Vec<i8> {
    vec![1, 1, 1, 1, 1, 1, 0, 1, 1]
}

/// The unfused chain's tensors, allocated once: the packed q, k, v and, per sequence, its
/// first row, length and intermediates.
struct Unfused {
    qkv: [Tensor; 3],
    seqs: Vec<(usize, usize, Vec<Tensor>)>,
}

impl AttentionBench {
    fn spec(&self) -> AttentionSpec {
        AttentionSpec {
            heads: self.heads,
            kv_heads: self.heads,
            modalities: M,
            mask: self.mask,
            bias: self.bias,
            scale: None,
        }
    }

    /// Floating-point work: 4·Lq·Lk·Dh per head, half of it under the causal mask.
    fn flops(&self) -> f64 {
        let f: f64 = self.seqlens.iter().map(|&l| 4.0 * (l * l) as f64 * (self.heads * self.head_dim) as f64).sum();
        if self.mask == MaskMode::Causal { f / 2.0 } else { f }
    }
}

/// Run the benchmark on `dev`; `peak` is (GFLOP/s, source) from the caller.
pub fn run(b: &AttentionBench, dev: &dyn Backend, probe: &mut dyn FnMut() -> Option<f64>) -> Result<ExitCode> {
    if b.seqlens.is_empty() || b.seqlens.contains(&0) || b.heads == 0 || b.head_dim == 0 {
        return Err(Error::invalid(format!(
            "kernels: attention needs non-empty --seqlens of positive lengths, --heads > 0 and --head-dim > 0, got {:?}, {}, {}",
            b.seqlens, b.heads, b.head_dim
        )));
    }
    if !b.dtype.is_float() {
        return Err(Error::invalid(format!("kernels: attention runs on f32, f16 or bf16, not {}", b.dtype)));
    }
    let (h, dh) = (b.heads, b.head_dim);
    let total: usize = b.seqlens.iter().sum();
    let mut rng = Rng::new(7);
    let (q, k, v) = (
        tensor(&[total, h, dh], b.dtype, 1.0, &mut rng),
        tensor(&[total, h, dh], b.dtype, 1.0, &mut rng),
        tensor(&[total, h, dh], b.dtype, 1.0, &mut rng),
    );
    let mut cu = vec![0i32];
    let mut ids = Vec::with_capacity(total);
    for &l in &b.seqlens {
        cu.push(cu[cu.len() - 1] + l as i32);
        ids.extend((0..l).map(|i| modality(i, l)));
    }
    let bias_vals = tensor(&[h, M, M], DType::F32, 1.0, &mut rng);
    let mut host = vec![
        q.clone(),
        k.clone(),
        v.clone(),
        HostTensor::from_slice([cu.len()], &cu)?,
        HostTensor::from_slice([cu.len()], &cu)?,
        HostTensor::from_slice([total], &ids)?,
        HostTensor::from_slice([total], &ids)?,
    ];
    if b.mask == MaskMode::Pairs {
        host.push(HostTensor::from_slice([M, M], &pairs())?);
    }
    if b.bias {
        host.push(bias_vals.clone());
    }
    let ins: Vec<Tensor> = host.iter().map(|t| dev.to_device(t)).collect::<Result<_>>()?;
    let refs: Vec<&Tensor> = ins.iter().collect();
    let op = Op::FusedAttention(b.spec());
    let out = dev.empty(&TensorDesc::new([total, h, dh], b.dtype))?;
    let unfused = prepare_unfused(b, dev, &ins[0], &ins[1], &ins[2], &bias_vals)?;

    let mut ours = || {
        dev.launch(&op, &refs, &out)?;
        dev.synchronize()
    };
    let mut theirs = || run_unfused(b, dev, &unfused);
    let pair = timing::time_ms(&mut ours)? + timing::time_ms(&mut theirs)?;
    let reps = if b.reps > 0 { b.reps } else { (3000.0 / pair.max(1e-3)).clamp(3.0, 50.0) as usize };
    let (mut t_ours, mut t_peer, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        t_ours.push(timing::time_ms(&mut ours)?);
        t_peer.push(timing::time_ms(&mut theirs)?);
        peaks.extend(probe());
    }
    let (ours_ms, peer_ms) = (timing::median(&t_ours), timing::median(&t_peer));
    let got = dev.to_host(&out)?.to_f32();
    let want = unfused_output(dev, &unfused)?;
    let scale = want.iter().fold(0.0f64, |m, &x| m.max((x as f64).abs())).max(1e-30);
    let diff = got.iter().zip(&want).fold(0.0f64, |m, (&a, &c)| m.max((a as f64 - c as f64).abs())) / scale;
    let limit = if b.dtype == DType::F32 { 1e-4 } else { 2e-2 };

    let flops = b.flops();
    let (tflops, peer_tflops) = (flops / (ours_ms * 1e9), flops / (peer_ms * 1e9));
    let peak = timing::median(&peaks);
    let peak_fraction = if peak > 0.0 { tflops * 1e3 / peak } else { 0.0 };
    let ratio = peer_ms / ours_ms;
    let peer_name = "unfused on the same device (batched GEMM QKᵀ, mask, softmax, GEMM PV)";
    if b.json {
        let v = json!({
            "op": "attention", "backend": dev.name(), "dtype": b.dtype.name(), "shape": b.seqlens,
            "heads": h, "head_dim": dh, "mask": b.mask.name(), "bias": b.bias,
            "median_ms": ours_ms, "tflops": tflops, "peak_fraction": peak_fraction,
            "peer": {"name": peer_name, "median_ms": peer_ms, "tflops": peer_tflops},
            "ratio": ratio, "reps": reps, "max_rel_diff": diff,
        });
        println!("{}", serde_json::to_string(&v).unwrap_or_default());
    } else {
        println!(
            "attention {} seqlens {:?} heads {h} head_dim {dh} mask {}{} on {}",
            b.dtype,
            b.seqlens,
            b.mask.name(),
            if b.bias { " + pair bias" } else { "" },
            dev.name()
        );
        println!("  fused      {ours_ms:10.3} ms  {tflops:8.3} TFLOP/s  {:5.1}% of peak", peak_fraction * 100.0);
        println!("  unfused    {peer_ms:10.3} ms  {peer_tflops:8.3} TFLOP/s");
        println!("  ratio (unfused time / fused): {ratio:.2}×   medians of {reps} interleaved rounds");
        println!("  outputs agree: max |fused − unfused| / max |unfused| = {diff:.2e}");
    }
    if diff > limit {
        eprintln!(
            "error: fused and unfused disagree (max relative difference {diff:.2e} > {limit:.0e}): the figure is not valid"
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Additive mask (0 or −1e30) plus pair bias for one sequence: `[H, L, L]` with bias, else `[L, L]`.
fn mask_tensor(b: &AttentionBench, l: usize, bias: &[f32]) -> Result<Option<HostTensor>> {
    if b.mask == MaskMode::Full && !b.bias {
        return Ok(None);
    }
    let p = pairs();
    let heads = if b.bias { b.heads } else { 1 };
    let mut m = vec![0.0f32; heads * l * l];
    for hh in 0..heads {
        for i in 0..l {
            for j in 0..l {
                let (mq, mk) = (modality(i, l) as usize, modality(j, l) as usize);
                let seen = omnifuse_core::attention::visible(b.mask, &p, M, i, j, l, l, mq, mk);
                let add = if b.bias { bias[(hh * M + mq) * M + mk] } else { 0.0 };
                m[(hh * l + i) * l + j] = if seen { add } else { -1e30 };
            }
        }
    }
    let shape = if b.bias { vec![heads, l, l] } else { vec![l, l] };
    Ok(Some(HostTensor::from_slice(shape, &m)?))
}

/// Tensors of the unfused chain for each sequence: [q, k, v] slices, their [H, L, Dh]
/// permutes, scores, masked scores, probabilities, context, output, and the mask.
fn prepare_unfused(
    b: &AttentionBench,
    dev: &dyn Backend,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &HostTensor,
) -> Result<Unfused> {
    let (h, dh) = (b.heads, b.head_dim);
    let bias = bias.to_vec::<f32>()?;
    let mut seqs = Vec::new();
    let mut start = 0;
    for &l in &b.seqlens {
        let mut t = Vec::new();
        for _ in 0..3 {
            t.push(dev.empty(&TensorDesc::new([l, h, dh], b.dtype))?); // slices
        }
        for _ in 0..3 {
            t.push(dev.empty(&TensorDesc::new([h, l, dh], b.dtype))?); // per-head layout
        }
        t.push(dev.empty(&TensorDesc::new([h, l, l], b.dtype))?); // scores
        t.push(dev.empty(&TensorDesc::new([h, l, l], b.dtype))?); // masked
        t.push(dev.empty(&TensorDesc::new([h, l, l], b.dtype))?); // probabilities
        t.push(dev.empty(&TensorDesc::new([h, l, dh], b.dtype))?); // context
        t.push(dev.empty(&TensorDesc::new([l, h, dh], b.dtype))?); // output
        if let Some(m) = mask_tensor(b, l, &bias)? {
            let m = if b.dtype == DType::F32 { m } else { cast(&m, b.dtype)? };
            t.push(dev.to_device(&m)?);
        }
        seqs.push((start, l, t));
        start += l;
    }
    Ok(Unfused { qkv: [q.clone(), k.clone(), v.clone()], seqs })
}

fn cast(t: &HostTensor, dtype: DType) -> Result<HostTensor> {
    let v = t.to_f32();
    match dtype {
        DType::F16 => {
            HostTensor::from_slice(t.desc.shape.clone(), &v.iter().map(|&x| half::f16::from_f32(x)).collect::<Vec<_>>())
        }
        DType::BF16 => HostTensor::from_slice(
            t.desc.shape.clone(),
            &v.iter().map(|&x| half::bf16::from_f32(x)).collect::<Vec<_>>(),
        ),
        _ => Ok(t.clone()),
    }
}

fn run_unfused(b: &AttentionBench, dev: &dyn Backend, u: &Unfused) -> Result<()> {
    let scale = 1.0 / (b.head_dim as f32).sqrt();
    let heads_first = Op::Permute { perm: vec![1, 0, 2] };
    for (start, l, t) in &u.seqs {
        for i in 0..3 {
            dev.launch(&Op::Slice { axis: 0, start: *start, end: start + l }, &[&u.qkv[i]], &t[i])?;
            dev.launch(&heads_first, &[&t[i]], &t[3 + i])?;
        }
        dev.launch(&gemm(true, scale), &[&t[3], &t[4]], &t[6])?;
        let scores = match t.get(11) {
            Some(mask) => {
                dev.launch(&Op::Add, &[&t[6], mask], &t[7])?;
                &t[7]
            }
            None => &t[6],
        };
        dev.launch(&Op::Softmax, &[scores], &t[8])?;
        dev.launch(&gemm(false, 1.0), &[&t[8], &t[5]], &t[9])?;
        dev.launch(&heads_first, &[&t[9]], &t[10])?;
    }
    dev.synchronize()
}

fn unfused_output(dev: &dyn Backend, u: &Unfused) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for (_, _, t) in &u.seqs {
        out.extend(dev.to_host(&t[10])?.to_f32());
    }
    Ok(out)
}

fn gemm(trans_b: bool, scale: f32) -> Op {
    Op::Gemm(GemmSpec { trans_a: false, trans_b, epilogue: Epilogue { scale, ..Epilogue::default() } })
}
