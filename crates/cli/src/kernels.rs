//! `omnifuse kernels`: time one kernel at one shape on a device, and in the same run the same
//! computation through a well-known peer, then report median time, GFLOP/s, the fraction of
//! the device's measured peak and the ratio. The outputs are compared, so a fast wrong
//! kernel cannot report a figure.

use std::process::ExitCode;
use std::time::Duration;

use half::{bf16, f16};
use omnifuse_core::op::{GemmSpec, Op, OpKind};
use omnifuse_core::{Backend, DType, Error, HostTensor, Result, Tensor};
use omnifuse_registry::{OpenOptions, open_with};
use serde_json::json;

use crate::peers::{self, GemmPeer};
use crate::timing::median_ms;

/// Arguments of `omnifuse kernels`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Op to time (gemm).
    #[arg(long, default_value = "gemm")]
    op: String,
    /// Element type: f32, f16, bf16 or i8 (i8 accumulates to i32).
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
    /// Timed repetitions (0 = as many as fit in about two seconds, at least 5).
    #[arg(long, default_value_t = 0)]
    reps: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

struct Measured {
    name: String,
    median_ms: f64,
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
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

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    let kind = OpKind::parse(&args.op)?;
    if kind != OpKind::Gemm {
        return Err(Error::invalid(format!(
            "kernels: '{}' has no benchmark yet; available: gemm (attention arrives with the fused kernel)",
            args.op
        )));
    }
    let dtype: DType = args.dtype.parse()?;
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
    let dev = open_with(&args.backend, OpenOptions { threads: args.threads })?;
    let info = dev.info();
    let threads = if args.threads == 0 { info.compute_units.max(1) } else { args.threads };
    let (a_vals, b_vals) = (random(m * k, 1), random(k * n, 2));
    let a = dev.to_device(&host(dtype, [m, k], &a_vals)?)?;
    let b = dev.to_device(&host(dtype, [k, n], &b_vals)?)?;
    let op = Op::Gemm(GemmSpec::default());
    let out = dev.run_op(&op, &[&a, &b])?;
    let budget = Duration::from_secs(2);
    let ours_ms = median_ms(1, args.reps, budget, || launch(&*dev, &op, &a, &b, &out))?;
    let ours = dev.to_host(&out)?.to_f32();

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::invalid(format!("thread pool: {e}")))?;
    let (peer, peer_out) = pool.install(|| run_peer(&args, dtype, m, n, k, threads, budget))?;
    let diff = max_rel_diff(&ours, &peer_out);
    let limit = match dtype {
        DType::F32 => 1e-4,
        DType::F16 => 2e-2,
        DType::BF16 => 5e-2,
        _ => 1e-4,
    };

    let flops = 2.0 * m as f64 * n as f64 * k as f64;
    let gflops = flops / (ours_ms * 1e6);
    let peer_gflops = flops / (peer.median_ms * 1e6);
    let peak = info.peak_gflops_f32.unwrap_or(0.0);
    let peak_fraction = if peak > 0.0 { gflops / peak } else { 0.0 };
    let ratio = peer.median_ms / ours_ms;
    let kernel = omnifuse_cpu::fast::gemm::f32_kernel_name();
    if args.json {
        let v = json!({
            "op": "gemm", "backend": info.name, "dtype": dtype.name(), "shape": [m, n, k],
            "median_ms": ours_ms, "gflops": gflops, "peak_fraction": peak_fraction,
            "peer": {"name": peer.name, "median_ms": peer.median_ms, "gflops": peer_gflops},
            "ratio": ratio, "threads": threads, "peak_gflops": peak, "peak_source": info.peak_source,
            "kernel": kernel, "max_rel_diff": diff, "device_name": info.device_name,
        });
        println!("{}", serde_json::to_string(&v).unwrap_or_default());
    } else {
        println!(
            "gemm {dtype} m={m} n={n} k={k} on {} ({}; {threads} threads; micro-kernel {kernel})",
            info.name, info.device_name
        );
        println!(
            "  omnifuse   {ours_ms:10.3} ms  {gflops:9.1} GFLOP/s  {:5.1}% of peak ({peak:.0} GFLOP/s, {})",
            peak_fraction * 100.0,
            info.peak_source
        );
        println!("  {:<10} {:10.3} ms  {peer_gflops:9.1} GFLOP/s", "peer", peer.median_ms);
        println!("  peer: {}", peer.name);
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

fn run_peer(
    args: &Args,
    dtype: DType,
    m: usize,
    n: usize,
    k: usize,
    threads: usize,
    budget: Duration,
) -> Result<(Measured, Vec<f32>)> {
    // The peer sees the same values (rounded to the dtype where it computes in it).
    let (a, b) = (random(m * k, 1), random(k * n, 2));
    match dtype {
        DType::F16 => {
            let (a, b): (Vec<f16>, Vec<f16>) =
                (a.iter().map(|&x| f16::from_f32(x)).collect(), b.iter().map(|&x| f16::from_f32(x)).collect());
            let mut c = vec![f16::ZERO; m * n];
            let ms = median_ms(1, args.reps, budget, || peers::gemm_f16(m, n, k, &a, &b, &mut c, threads))?;
            Ok((Measured { name: "gemm 0.19 (f16)".into(), median_ms: ms }, c.iter().map(|x| x.to_f32()).collect()))
        }
        _ => {
            // f32 peer; for bf16 and i8 it computes the same product in f32 (i8 values scaled
            // back so outputs compare), as the int8 convention of the project's reports says.
            let round = |v: &[f32]| -> Vec<f32> {
                match dtype {
                    DType::BF16 => v.iter().map(|&x| bf16::from_f32(x).to_f32()).collect(),
                    DType::I8 => v.iter().map(|&x| (x * 127.0).round()).collect(),
                    _ => v.to_vec(),
                }
            };
            let (a, b) = (round(&a), round(&b));
            let mut c = vec![0.0f32; m * n];
            let ms = median_ms(1, args.reps, budget, || peers::gemm_f32(args.peer, m, n, k, &a, &b, &mut c, threads))?;
            Ok((Measured { name: args.peer.name("f32"), median_ms: ms }, c))
        }
    }
}

fn max_rel_diff(ours: &[f32], peer: &[f32]) -> f64 {
    let scale = peer.iter().fold(0.0f64, |m, &x| m.max((x as f64).abs())).max(1e-30);
    ours.iter().zip(peer).fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs())) / scale
}
