//! `omnifuse kernels`: time one kernel at one shape on a device, and in the same run the same
//! computation through a well-known peer, then report median time, GFLOP/s, the fraction of
//! the device's measured peak and the ratio. The outputs are compared, so a fast wrong
//! kernel cannot report a figure.

use std::process::ExitCode;
use std::sync::Arc;

use half::{bf16, f16};
use omnifuse_core::op::{GemmSpec, Op, OpKind};
use omnifuse_core::{Backend, DType, Error, HostTensor, MaskMode, Result, Tensor};
use omnifuse_registry::{OpenOptions, open_with};
use serde_json::json;

use omnifuse_testkit::cases::Rng;

use crate::peers::{self, GemmPeer};
use crate::timing;

/// Arguments of `omnifuse kernels`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Op to time: gemm, or attention (the fused cross-modal attention on a packed batch,
    /// next to the unfused GEMM–softmax–GEMM path).
    #[arg(long, default_value = "gemm")]
    op: String,
    /// Element type: f32, f16, bf16 or i8 (i8 accumulates to i32, timed against the peer's
    /// f32); or int8: the INT8 GEMM bare, with its fused dequantising epilogue, and with
    /// per-token quantisation of f32 input, next to our f32 GEMM and the peer's, one run.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Rows of the output.
    #[arg(long, default_value_t = 1024)]
    m: usize,
    /// Columns of the output.
    #[arg(long, default_value_t = 1024)]
    n: usize,
    /// Reduction length.
    #[arg(long, default_value_t = 1024)]
    k: usize,
    /// Device to run on (see `omnifuse info`).
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// CPU threads for us and the peer (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// The peer to run next to us.
    #[arg(long, value_enum, default_value_t = GemmPeer::Gemm)]
    peer: GemmPeer,
    /// Timed rounds, each running ours, the peer and (on the CPU) the peak probe once
    /// (0 = as many as fit in about three seconds, 5 to 100).
    #[arg(long, default_value_t = 0)]
    reps: usize,
    /// GEMM: store B transposed (`[n, k]`, as `Linear` weights are).
    #[arg(long)]
    trans_b: bool,
    /// GEMM: mark B a constant weight (`Backend::mark_constant`), as the model does, so a
    /// backend that keeps packed weights packs it once rather than on every call.
    #[arg(long)]
    weight: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Attention: sequence lengths of the packed batch, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "4096")]
    seqlens: Vec<usize>,
    /// Attention: heads.
    #[arg(long, default_value_t = 8)]
    heads: usize,
    /// Attention: head width.
    #[arg(long, default_value_t = 64)]
    head_dim: usize,
    /// Attention: mask mode (full, intra, cross, pairs, causal).
    #[arg(long, default_value = "full")]
    mask: String,
    /// Attention: add the learned per-(query modality, key modality) bias.
    #[arg(long)]
    bias: bool,
    /// GEMM on OpenCL: `stored` runs the tiles in use (tuned if `omnifuse tune` stored some
    /// for the device, else the default); `default` ignores a stored tuning; `compare` times
    /// both interleaved, with the CPU backend at the same shape, and prints tuned / default.
    #[arg(long, value_enum, default_value_t = TilesMode::Stored)]
    tiles: TilesMode,
}

/// Which GEMM configuration of an OpenCL device `kernels` times.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TilesMode {
    /// The configuration in use (tuned, else default).
    Stored,
    /// The default configuration, ignoring a stored tuning.
    Default,
    /// Both, interleaved, plus the CPU backend.
    Compare,
}

/// A second device timed next to ours in `--tiles compare`: its label, device and tensors.
struct Extra {
    label: &'static str,
    dev: Arc<dyn Backend>,
    a: Tensor,
    b: Tensor,
    out: Tensor,
    op: Op,
    times: Vec<f64>,
}

impl Extra {
    fn new(label: &'static str, dev: Arc<dyn Backend>, a: &HostTensor, b: &HostTensor, op: &Op) -> Result<Self> {
        let (a, b) = (dev.to_device(a)?, dev.to_device(b)?);
        let out = dev.run_op(op, &[&a, &b])?;
        Ok(Extra { label, dev, a, b, out, op: op.clone(), times: Vec::new() })
    }

    fn time(&mut self) -> Result<f64> {
        timing::time_ms(&mut || launch(&*self.dev, &self.op, &self.a, &self.b, &self.out))
    }
}

/// The `gemm tiles …` feature of an OpenCL device (its configuration and whether it is tuned).
fn tiles_feature(info: &omnifuse_core::DeviceInfo) -> String {
    info.features.iter().find(|f| f.starts_with("gemm tiles")).cloned().unwrap_or_default()
}

fn run_attention(args: &Args) -> Result<ExitCode> {
    let mask = MaskMode::ALL.iter().copied().find(|m| m.name() == args.mask).ok_or_else(|| {
        Error::invalid(format!("kernels: unknown mask '{}': expected full, intra, cross, pairs or causal", args.mask))
    })?;
    let dev = open_with(&args.backend, OpenOptions { threads: args.threads })?;
    let info = dev.info();
    let threads = if args.threads == 0 { info.compute_units.max(1) } else { args.threads };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::invalid(format!("thread pool: {e}")))?;
    let cpu = info.backend == "cpu";
    let mut probe = || if cpu { Some(omnifuse_cpu::peak::probe(&pool).0) } else { info.peak_gflops_f32 };
    let bench = crate::attention::AttentionBench {
        seqlens: args.seqlens.clone(),
        heads: args.heads,
        head_dim: args.head_dim,
        mask,
        bias: args.bias,
        dtype: args.dtype.parse()?,
        reps: args.reps,
        json: args.json,
    };
    crate::attention::run(&bench, &*dev, &mut probe)
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

fn host(dtype: DType, shape: [usize; 2], v: &[f32]) -> Result<HostTensor> {
    match dtype {
        DType::F32 => HostTensor::from_slice(shape, v),
        DType::F16 => HostTensor::from_slice(shape, &v.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>()),
        DType::BF16 => HostTensor::from_slice(shape, &v.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>()),
        DType::I8 => HostTensor::from_slice(shape, &v.iter().map(|&x| (x * 127.0).round() as i8).collect::<Vec<_>>()),
        DType::I32 => Err(Error::invalid("gemm: i32 inputs are not a GEMM dtype; use i8 (accumulates to i32)")),
    }
}

/// `matrixmultiply` sizes its own thread pool from `MATMUL_NUM_THREADS` at first use, not
/// from ours: set it to the thread count asked for, so both sides run on as many threads.
/// Called at the start of `main`, before any thread exists.
pub fn pin_peer_threads(args: &Args) {
    if args.threads > 0 && args.peer == GemmPeer::Matrixmultiply {
        // SAFETY: called before the process starts any thread, so no other thread can be
        // reading the environment concurrently.
        unsafe { std::env::set_var("MATMUL_NUM_THREADS", args.threads.to_string()) };
    }
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    if args.op == "attention" || args.op == "fused_attention" {
        return run_attention(&args);
    }
    let kind = OpKind::parse(&args.op)?;
    if kind != OpKind::Gemm {
        return Err(Error::invalid(format!("kernels: '{}' has no benchmark yet; available: gemm, attention", args.op)));
    }
    if args.dtype == "int8" {
        let a = crate::kernels_int8::Int8Args {
            backend: &args.backend,
            mnk: (args.m, args.n, args.k),
            threads: args.threads,
            peer: args.peer,
            reps: args.reps,
            json: args.json,
        };
        if args.m == 0 || args.n == 0 || args.k == 0 {
            return Err(Error::invalid("kernels: m, n and k must be positive"));
        }
        return crate::kernels_int8::run(&a);
    }
    let dtype: DType = args.dtype.parse()?;
    if let Some(r) = omnifuse_registry::device_gemm_bench(
        &args.backend,
        dtype,
        args.m,
        args.n,
        args.k,
        if args.reps == 0 { 50 } else { args.reps },
    ) {
        return report_device_gemm(&args, dtype, r?);
    }
    if !OpKind::Gemm.dtypes().contains(&dtype) {
        return Err(Error::invalid(format!("kernels: gemm runs on f32, f16, bf16 or i8, not {dtype}")));
    }
    let (m, n, k) = (args.m, args.n, args.k);
    if m == 0 || n == 0 || k == 0 {
        return Err(Error::invalid(format!("kernels: m, n and k must be positive, got {m}×{n}×{k}")));
    }
    m.checked_mul(k)
        .and_then(|x| x.checked_mul(n))
        .filter(|&x| x <= 1 << 40)
        .ok_or_else(|| Error::invalid(format!("kernels: {m}×{n}×{k} is too large to benchmark")))?;
    let opts = OpenOptions { threads: args.threads };
    let mut dev = open_with(&args.backend, opts)?;
    let mut info = dev.info();
    if args.tiles != TilesMode::Stored {
        if info.backend != "opencl" {
            return Err(Error::invalid(format!("kernels: --tiles applies to OpenCL devices, not {}", info.name)));
        }
        if args.tiles == TilesMode::Default {
            dev = open_with(&format!("{}@default", info.name), opts)?;
            info = dev.info();
        }
    }
    let threads = if args.threads == 0 { info.compute_units.max(1) } else { args.threads };
    let (a_vals, b_vals) = (random(m * k, 1), random(k * n, 2));
    let hb = if args.trans_b {
        let bt: Vec<f32> = (0..n * k).map(|e| b_vals[(e % k) * n + e / k]).collect();
        host(dtype, [n, k], &bt)?
    } else {
        host(dtype, [k, n], &b_vals)?
    };
    let ha = host(dtype, [m, k], &a_vals)?;
    let a = dev.to_device(&ha)?;
    let b = if args.weight { dev.to_device_constant(&hb)? } else { dev.to_device(&hb)? };
    let op = Op::Gemm(GemmSpec { trans_b: args.trans_b, ..GemmSpec::default() });
    let out = dev.run_op(&op, &[&a, &b])?;
    // --tiles compare: the device at its default configuration, and the CPU backend.
    let mut extras = Vec::new();
    if args.tiles == TilesMode::Compare {
        let default = open_with(&format!("{}@default", info.name), opts)?;
        extras.push(Extra::new("default", default, &ha, &hb, &op)?);
        extras.push(Extra::new("cpu", open_with("cpu", opts)?, &ha, &hb, &op)?);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::invalid(format!("thread pool: {e}")))?;
    let mut peer = PeerRun::new(args.peer, dtype, &a_vals, &b_vals, m, n, k, threads);
    let mut ours = || launch(&*dev, &op, &a, &b, &out);
    let mut theirs = || pool.install(|| peer.run());
    // Warm up both, then size the run to about three seconds of the pair.
    let mut pair = timing::time_ms(&mut ours)? + timing::time_ms(&mut theirs)?;
    for x in &mut extras {
        pair += x.time()?;
    }
    let reps = if args.reps > 0 { args.reps } else { (3000.0 / pair.max(1e-3)).clamp(5.0, 100.0) as usize };
    let cpu = info.backend == "cpu";
    let (mut t_ours, mut t_peer, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        t_ours.push(timing::time_ms(&mut ours)?);
        t_peer.push(timing::time_ms(&mut theirs)?);
        for x in &mut extras {
            let t = x.time()?;
            x.times.push(t);
        }
        if cpu {
            peaks.push(omnifuse_cpu::peak::probe(&pool).0);
        }
    }
    let (ours_ms, peer_ms) = (timing::median(&t_ours), timing::median(&t_peer));
    let ours_out = dev.to_host(&out)?.to_f32();
    let peer_out = peer.output();
    let mut diff = max_rel_diff(&ours_out, &peer_out);
    for x in &extras {
        diff = diff.max(max_rel_diff(&x.dev.to_host(&x.out)?.to_f32(), &peer_out));
    }
    let limit = match dtype {
        DType::F16 => 2e-2,
        DType::BF16 => 5e-2,
        _ => 1e-4,
    };
    let (peak, peak_source) = if cpu {
        (timing::median(&peaks), format!("FMA probe interleaved with the timed runs, median of {reps}"))
    } else {
        (info.peak_gflops_f32.unwrap_or(0.0), info.peak_source.clone())
    };

    let flops = 2.0 * m as f64 * n as f64 * k as f64;
    let gflops = flops / (ours_ms * 1e6);
    let peer_gflops = flops / (peer_ms * 1e6);
    let peak_fraction = if peak > 0.0 { gflops / peak } else { 0.0 };
    let ratio = peer_ms / ours_ms;
    let kernel = omnifuse_cpu::fast::gemm::f32_kernel_name();
    // (label, median ms, GFLOP/s) of the extra devices.
    let extra: Vec<(&str, f64, f64)> = extras
        .iter()
        .map(|x| {
            let ms = timing::median(&x.times);
            (x.label, ms, flops / (ms * 1e6))
        })
        .collect();
    let default_ms = extra.iter().find(|e| e.0 == "default").map(|e| e.1);
    let cpu_run = extra.iter().find(|e| e.0 == "cpu");
    let tiles_json = match default_ms {
        Some(d) => json!({
            "mode": "compare", "in_use": tiles_feature(&info),
            "default": {"median_ms": d, "gflops": flops / (d * 1e6)}, "in_use_over_default": d / ours_ms,
        }),
        None if info.backend == "opencl" => {
            json!({"mode": format!("{:?}", args.tiles).to_lowercase(), "in_use": tiles_feature(&info)})
        }
        None => serde_json::Value::Null,
    };
    if args.json {
        let v = json!({
            "op": "gemm", "backend": info.name, "dtype": dtype.name(), "shape": [m, n, k], "trans_b": args.trans_b, "weight": args.weight,
            "median_ms": ours_ms, "gflops": gflops, "peak_fraction": peak_fraction,
            "peer": {"name": peer.name(), "median_ms": peer_ms, "gflops": peer_gflops},
            "ratio": ratio, "threads": threads, "peak_gflops": peak, "peak_source": peak_source, "reps": reps,
            "kernel": kernel, "max_rel_diff": diff, "device_name": info.device_name, "tiles": tiles_json,
            "cpu_backend": cpu_run.map(|c| json!({"median_ms": c.1, "gflops": c.2})),
        });
        println!("{}", serde_json::to_string(&v).unwrap_or_default());
    } else {
        println!(
            "gemm {dtype} m={m} n={n} k={k} on {} ({}; {threads} threads; micro-kernel {kernel})",
            info.name, info.device_name
        );
        println!("  omnifuse   {ours_ms:10.3} ms  {gflops:9.1} GFLOP/s  {:5.1}% of peak", peak_fraction * 100.0);
        println!("  {:<10} {peer_ms:10.3} ms  {peer_gflops:9.1} GFLOP/s  ({})", "peer", peer.name());
        println!("  peak       {peak:10.1} GFLOP/s ({peak_source})");
        if info.backend == "opencl" {
            println!("  omnifuse ran {}", tiles_feature(&info));
        }
        if let Some(d) = default_ms {
            println!("  default    {d:10.3} ms  {:9.1} GFLOP/s  (default GEMM configuration)", flops / (d * 1e6));
            println!("  ratio (default time / in use): {:.3}×  (the tuned configuration's speed-up)", d / ours_ms);
        }
        if let Some((_, ms, g)) = cpu_run {
            println!("  cpu        {ms:10.3} ms  {g:9.1} GFLOP/s  (omnifuse CPU backend, same shape)");
        }
        println!("  medians of {reps} interleaved rounds");
        println!("  ratio (peer time / ours): {ratio:.3}×  (> 1 means omnifuse is faster)");
        println!("  outputs agree: max |ours − peer| / max |peer| = {diff:.2e}");
    }
    if diff > limit {
        eprintln!(
            "error: omnifuse and the peer disagree (max relative difference {diff:.2e} > {limit:.0e}): the figure above is not valid"
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn launch(dev: &dyn Backend, op: &Op, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    dev.launch(op, &[a, b], out)?;
    dev.synchronize()
}

/// Print a GPU GEMM timed next to the vendor library (same keys as the CPU report).
fn report_device_gemm(args: &Args, dtype: DType, r: omnifuse_registry::DeviceGemmBench) -> Result<ExitCode> {
    let (m, n, k) = (args.m, args.n, args.k);
    let flops = 2.0 * m as f64 * n as f64 * k as f64;
    let tflops = |ms: f64| flops / (ms * 1e9);
    let ratio = r.peer_ms.as_ref().ok().map(|p| p / r.ours_ms);
    if args.json {
        let peer = match &r.peer_ms {
            Ok(p) => json!({"name": r.peer_name, "median_ms": p, "tflops": tflops(*p)}),
            Err(e) => json!({"name": r.peer_name, "error": e}),
        };
        let v = json!({
            "op": "gemm", "backend": r.device.name, "device_name": r.device.device_name, "dtype": dtype.name(),
            "shape": [m, n, k], "layout": "A [M,K] · B [N,K]ᵀ", "median_ms": r.ours_ms, "tflops": tflops(r.ours_ms),
            "peer": peer, "ratio": ratio, "max_rel_diff": r.max_rel_diff, "reps": r.reps, "timing": "CUDA events, median",
        });
        println!("{}", serde_json::to_string(&v).unwrap_or_default());
    } else {
        println!("gemm {dtype} m={m} n={n} k={k} (B [N,K]) on {} ({})", r.device.name, r.device.device_name);
        println!("  omnifuse   {:10.4} ms  {:8.1} TFLOP/s", r.ours_ms, tflops(r.ours_ms));
        match &r.peer_ms {
            Ok(p) => println!("  peer       {p:10.4} ms  {:8.1} TFLOP/s  ({})", tflops(*p), r.peer_name),
            Err(e) => println!("  peer       did not run: {e}"),
        }
        println!("  medians of {} launches each, timed with CUDA events", r.reps);
        if let Some(x) = ratio {
            println!("  ratio (peer time / ours): {x:.3}×  (> 1 means omnifuse is faster)");
        }
        if let Some(d) = r.max_rel_diff {
            println!("  outputs agree: max |ours − peer| / max |peer| = {d:.2e}");
        }
    }
    match r.max_rel_diff {
        Some(d) if d > 2e-2 => {
            eprintln!(
                "error: omnifuse and the peer disagree (max relative difference {d:.2e}): the figure above is not valid"
            );
            Ok(ExitCode::from(1))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// The peer's inputs, output and call, prepared once so each timed round is only the GEMM.
enum PeerData {
    F32 { a: Vec<f32>, b: Vec<f32>, c: Vec<f32> },
    F16 { a: Vec<f16>, b: Vec<f16>, c: Vec<f16> },
}

struct PeerRun {
    peer: GemmPeer,
    data: PeerData,
    dims: (usize, usize, usize),
    threads: usize,
}

impl PeerRun {
    /// The peer sees the same values, rounded to the dtype it computes in: f16 through the
    /// gemm crate's f16 path; bf16 and i8 as the same product in f32 (i8 values as integers),
    /// the convention the project's int8 reports use.
    #[allow(clippy::too_many_arguments)]
    fn new(peer: GemmPeer, dtype: DType, a: &[f32], b: &[f32], m: usize, n: usize, k: usize, threads: usize) -> Self {
        let data = match dtype {
            DType::F16 => PeerData::F16 {
                a: a.iter().map(|&x| f16::from_f32(x)).collect(),
                b: b.iter().map(|&x| f16::from_f32(x)).collect(),
                c: vec![f16::ZERO; m * n],
            },
            _ => {
                let round = |v: &[f32]| -> Vec<f32> {
                    match dtype {
                        DType::BF16 => v.iter().map(|&x| bf16::from_f32(x).to_f32()).collect(),
                        DType::I8 => v.iter().map(|&x| (x * 127.0).round()).collect(),
                        _ => v.to_vec(),
                    }
                };
                PeerData::F32 { a: round(a), b: round(b), c: vec![0.0; m * n] }
            }
        };
        PeerRun { peer, data, dims: (m, n, k), threads }
    }

    fn name(&self) -> String {
        match self.data {
            PeerData::F16 { .. } => "gemm 0.19 (f16)".into(),
            PeerData::F32 { .. } => self.peer.name("f32"),
        }
    }

    fn run(&mut self) -> Result<()> {
        let (m, n, k) = self.dims;
        match &mut self.data {
            PeerData::F32 { a, b, c } => peers::gemm_f32(self.peer, m, n, k, a, b, c, self.threads),
            PeerData::F16 { a, b, c } => peers::gemm_f16(m, n, k, a, b, c, self.threads),
        }
    }

    fn output(&self) -> Vec<f32> {
        match &self.data {
            PeerData::F32 { c, .. } => c.clone(),
            PeerData::F16 { c, .. } => c.iter().map(|x| x.to_f32()).collect(),
        }
    }
}

fn max_rel_diff(ours: &[f32], peer: &[f32]) -> f64 {
    let scale = peer.iter().fold(0.0f64, |m, &x| m.max((x as f64).abs())).max(1e-30);
    ours.iter().zip(peer).fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs())) / scale
}
