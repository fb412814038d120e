//! `omnifuse kernels --op gemm --dtype int8`: the INT8 GEMM next to the f32 GEMMs it is meant
//! to replace, at one shape, in one run: interleaved rounds of (1) the bare i8 × i8 → i32
//! GEMM, (2) the INT8 GEMM with the fused dequantising epilogue (static i8 A, per-row and
//! per-channel scales, bias), (3) the same with A given as f32 and quantised per token by the
//! op, (4) our f32 GEMM with bias, and (5) the peer crate's f32 GEMM. Medians and ratios are
//! reported; the INT8 outputs are compared with the f32 result (quantisation error, reported,
//! not a failure) and the bare and fused INT8 results with each other (must agree).

use std::process::ExitCode;

use omnifuse_core::op::{Epilogue, GemmSpec, Op, QGemmSpec};
use omnifuse_core::{Backend, Error, HostTensor, Result, Tensor};
use omnifuse_registry::{OpenOptions, open_with};
use serde_json::json;

use crate::peers::{self, GemmPeer};
use crate::timing;

/// What the INT8 run needs from the command line.
pub struct Int8Args<'a> {
    /// Backend name.
    pub backend: &'a str,
    /// Output rows, columns, reduction.
    pub mnk: (usize, usize, usize),
    /// Threads (0 = all).
    pub threads: usize,
    /// The f32 peer.
    pub peer: GemmPeer,
    /// Rounds (0 = about three seconds' worth).
    pub reps: usize,
    /// JSON output.
    pub json: bool,
}

fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    let (mut e, mut s) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        e += (g as f64 - w as f64).powi(2);
        s += (w as f64).powi(2);
    }
    (e / s.max(1e-30)).sqrt()
}

/// One timed configuration.
struct Timed {
    label: &'static str,
    op: Op,
    inputs: Vec<Tensor>,
    out: Tensor,
    times: Vec<f64>,
}

impl Timed {
    fn new(dev: &dyn Backend, label: &'static str, op: Op, inputs: Vec<Tensor>) -> Result<Self> {
        let refs: Vec<&Tensor> = inputs.iter().collect();
        let out = dev.run_op(&op, &refs)?;
        Ok(Timed { label, op, inputs, out, times: Vec::new() })
    }

    fn time(&mut self, dev: &dyn Backend) -> Result<f64> {
        let refs: Vec<&Tensor> = self.inputs.iter().collect();
        timing::time_ms(&mut || {
            dev.launch(&self.op, &refs, &self.out)?;
            dev.synchronize()
        })
    }
}

/// Run the INT8 comparison.
pub fn run(args: &Int8Args) -> Result<ExitCode> {
    let (m, n, k) = args.mnk;
    let dev = open_with(args.backend, OpenOptions { threads: args.threads })?;
    let info = dev.info();
    let threads = if args.threads == 0 { info.compute_units.max(1) } else { args.threads };
    let mut rng = omnifuse_testkit::cases::Rng::new(7);
    let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
    // Weights stored [n, k] (a Linear layer's layout), bias [n].
    let w: Vec<f32> = (0..n * k).map(|_| rng.uniform(-1.0, 1.0) / (k as f32).sqrt()).collect();
    let bias: Vec<f32> = (0..n).map(|_| rng.uniform(-0.1, 0.1)).collect();
    let (aq, a_scale) = omnifuse_cpu::quant::quantize_rows(&a, m, k);
    let (wq, w_scale) = omnifuse_core::quant::quantize_matrix(&w, k);
    let up = |t: HostTensor| dev.to_device(&t);
    let t_a = up(HostTensor::from_slice([m, k], &a)?)?;
    let t_aq = up(HostTensor::from_slice([m, k], &aq)?)?;
    let t_as = up(HostTensor::from_slice([m], &a_scale)?)?;
    let t_w = up(HostTensor::from_slice([n, k], &w)?)?;
    let t_wq = up(HostTensor::from_slice([n, k], &wq)?)?;
    let t_ws = up(HostTensor::from_slice([n], &w_scale)?)?;
    let t_b = up(HostTensor::from_slice([n], &bias)?)?;
    let with_bias = Epilogue { bias: true, ..Epilogue::default() };
    let q = |e| Op::QGemm(QGemmSpec { epilogue: e, requant: None });
    let d = &*dev;
    let mut runs = vec![
        Timed::new(
            d,
            "int8 bare (i32 out)",
            Op::Gemm(GemmSpec { trans_b: true, ..GemmSpec::default() }),
            vec![t_aq.clone(), t_wq.clone()],
        )?,
        Timed::new(
            d,
            "int8 + dequant+bias",
            q(with_bias),
            vec![t_aq.clone(), t_wq.clone(), t_ws.clone(), t_as.clone(), t_b.clone()],
        )?,
        Timed::new(d, "int8 dynamic A (f32 in)", q(with_bias), vec![t_a.clone(), t_wq, t_ws, t_b.clone()])?,
        Timed::new(
            d,
            "f32 omnifuse (+bias)",
            Op::Gemm(GemmSpec { trans_b: true, epilogue: with_bias, ..GemmSpec::default() }),
            vec![t_a, t_w, t_b],
        )?,
    ];
    // The peer computes a · wᵀ from a transposed copy (row-major k × n), prepared once.
    let mut wt = vec![0.0f32; k * n];
    for j in 0..n {
        for p in 0..k {
            wt[p * n + j] = w[j * k + p];
        }
    }
    let mut c_peer = vec![0.0f32; m * n];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::invalid(format!("thread pool: {e}")))?;
    let mut peer = || pool.install(|| peers::gemm_f32(args.peer, m, n, k, &a, &wt, &mut c_peer, threads));
    let mut round = timing::time_ms(&mut peer)?;
    for r in &mut runs {
        round += r.time(d)?;
    }
    let reps = if args.reps > 0 { args.reps } else { (3000.0 / round.max(1e-3)).clamp(5.0, 100.0) as usize };
    let mut t_peer = Vec::new();
    for _ in 0..reps {
        for r in &mut runs {
            let t = r.time(d)?;
            r.times.push(t);
        }
        t_peer.push(timing::time_ms(&mut peer)?);
    }
    let med: Vec<f64> = runs.iter().map(|r| timing::median(&r.times)).collect();
    let peer_ms = timing::median(&t_peer);
    let ops = 2.0 * m as f64 * n as f64 * k as f64;
    let f32_out = d.to_host(&runs[3].out)?.to_f32();
    let fused = d.to_host(&runs[1].out)?.to_f32();
    let dynamic = d.to_host(&runs[2].out)?.to_f32();
    // The bare i32 result, dequantised and biased on the host, must equal the fused result.
    let bare = d.to_host(&runs[0].out)?.to_f32();
    let mut host_deq = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            host_deq[i * n + j] = bare[i * n + j] * a_scale[i] * w_scale[j] + bias[j];
        }
    }
    let fused_vs_bare = rel_err(&fused, &host_deq);
    let err_static = rel_err(&fused, &f32_out);
    let err_dynamic = rel_err(&dynamic, &f32_out);
    let peer_vs_ours = {
        let mut with_b = c_peer.clone();
        for row in with_b.chunks_exact_mut(n) {
            row.iter_mut().zip(&bias).for_each(|(v, b)| *v += b);
        }
        rel_err(&with_b, &f32_out)
    };
    let epilogue_overhead = med[1] / med[0] - 1.0;
    let int8_over_f32 = med[3] / med[1];
    let kernel = omnifuse_cpu::fast::gemm::int8_kernel_name();
    if args.json {
        let rows: Vec<_> = runs
            .iter()
            .zip(&med)
            .map(|(r, &ms)| json!({"label": r.label, "median_ms": ms, "gops": ops / (ms * 1e6)}))
            .collect();
        let v = json!({
            "op": "gemm", "dtype": "int8", "backend": info.name, "device_name": info.device_name,
            "shape": [m, n, k], "threads": threads, "reps": reps, "int8_kernel": kernel, "runs": rows,
            "peer": {"name": args.peer.name("f32"), "median_ms": peer_ms, "gflops": ops / (peer_ms * 1e6)},
            "int8_fused_over_f32_ours": int8_over_f32, "int8_fused_over_f32_peer": peer_ms / med[1],
            "dequant_epilogue_overhead": epilogue_overhead,
            "rel_err_vs_f32": {"static": err_static, "dynamic": err_dynamic},
            "fused_vs_bare_dequantised": fused_vs_bare, "peer_vs_ours_f32": peer_vs_ours,
        });
        println!("{}", serde_json::to_string(&v).unwrap_or_default());
    } else {
        println!(
            "gemm int8 m={m} n={n} k={k} on {} ({}; {threads} threads; int8 kernel {kernel})",
            info.name, info.device_name
        );
        for (r, &ms) in runs.iter().zip(&med) {
            println!("  {:<26} {ms:10.3} ms  {:9.1} GOP/s", r.label, ops / (ms * 1e6));
        }
        println!("  {:<26} {peer_ms:10.3} ms  {:9.1} GOP/s", args.peer.name("f32"), ops / (peer_ms * 1e6));
        println!("  medians of {reps} interleaved rounds");
        println!("  int8 (fused dequant) vs our f32 GEMM:  {int8_over_f32:.2}× faster");
        println!("  int8 (fused dequant) vs the peer f32:  {:.2}× faster", peer_ms / med[1]);
        println!("  dequant epilogue over the bare int8:   {:+.1}%", epilogue_overhead * 100.0);
        println!(
            "  per-token quantisation of A included:  {:+.1}% over the bare int8",
            (med[2] / med[0] - 1.0) * 100.0
        );
        println!(
            "  accuracy vs f32 (relative RMS): static A {err_static:.2e}, dynamic A {err_dynamic:.2e} (quantisation error)"
        );
        println!("  fused vs bare-then-dequantised: {fused_vs_bare:.1e}; peer vs our f32: {peer_vs_ours:.1e}");
    }
    if fused_vs_bare > 1e-5 || peer_vs_ours > 1e-4 || err_dynamic > 0.05 {
        eprintln!("error: results disagree beyond rounding (see above): the figures are not valid");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
