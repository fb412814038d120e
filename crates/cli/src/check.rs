//! `omnifuse check`: the conformance suite from the binary, so a user can qualify their own
//! device: every op × dtype against the CPU reference tier, plus the invalid-input table.
//! Exit code 1 on any failure.

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use omnifuse_core::op::OpKind;
use omnifuse_core::{DType, Result};
use omnifuse_cpu::CpuBackend;
use omnifuse_registry::{OpenOptions, open_with};
use omnifuse_testkit::reject::check_rejections;
use omnifuse_testkit::{Status, all_pairs, run_op};
use serde_json::json;

use crate::table::render;

/// Arguments of `omnifuse check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Device to qualify (see `omnifuse info`).
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Only this op (gemm, layernorm, softmax, gelu, relu, add, mul, scale, embedding, conv1d,
    /// im2col, pool, concat, slice, permute, reshape, quantize, dequantize, attention, fused_attention).
    #[arg(long)]
    op: Option<String>,
    /// Only this dtype (f32, f16, bf16, i8, i32).
    #[arg(long)]
    dtype: Option<String>,
    /// Generated cases per op × dtype.
    #[arg(long, default_value_t = 256)]
    cases: u32,
    /// Seed of the case generator (the same seed replays the same cases).
    #[arg(long, default_value_t = 0x0F05E)]
    seed: u64,
    /// CPU threads for the device under test (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    let dev = open_with(&args.backend, OpenOptions { threads: args.threads })?;
    let oracle = CpuBackend::reference()?;
    let op = args.op.as_deref().map(OpKind::parse).transpose()?;
    let dtype: Option<DType> = args.dtype.as_deref().map(str::parse).transpose()?;
    let pairs: Vec<(OpKind, DType)> =
        all_pairs().into_iter().filter(|(k, d)| op.is_none_or(|o| o == *k) && dtype.is_none_or(|t| t == *d)).collect();
    if pairs.is_empty() {
        return Err(omnifuse_core::Error::invalid(format!(
            "check: no op × dtype matches --op {} --dtype {}",
            args.op.as_deref().unwrap_or("(any)"),
            args.dtype.as_deref().unwrap_or("(any)")
        )));
    }
    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(pairs.len() as u64) };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut reports = Vec::new();
    for (k, d) in &pairs {
        bar.set_message(format!("{k} {d}"));
        reports.push(run_op(&*dev, &oracle, *k, *d, args.cases, args.seed));
        bar.inc(1);
    }
    let rejections = if op.is_none() && dtype.is_none() { Some(check_rejections(&*dev)) } else { None };
    bar.finish_and_clear();

    let failed = reports.iter().filter(|r| matches!(r.status, Status::Fail(_))).count()
        + rejections.as_ref().map_or(0, |r| r.len());
    if args.json {
        let rows: Vec<_> = reports
            .iter()
            .map(|r| {
                let (status, detail) = match &r.status {
                    Status::Pass => ("pass", String::new()),
                    Status::Fail(w) => ("fail", w.clone()),
                    Status::Skipped(w) => ("skipped", w.clone()),
                };
                json!({"op": r.kind.name(), "dtype": r.dtype.name(), "status": status, "detail": detail,
                       "cases": r.cases, "worst_nmse": r.worst_nmse, "worst_case": r.worst_case, "tolerance": r.tolerance})
            })
            .collect();
        let v = json!({"backend": dev.name(), "seed": args.seed, "cases_per_pair": args.cases, "results": rows,
                       "invalid_inputs": rejections.as_ref().map(|r| json!({"pass": r.is_empty(), "failures": r})),
                       "failed": failed});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        let mut rows = vec![vec![
            "op".to_string(),
            "dtype".into(),
            "result".into(),
            "cases".into(),
            "worst NMSE".into(),
            "tolerance".into(),
            "worst case".into(),
        ]];
        for r in &reports {
            let (status, case) = match &r.status {
                Status::Pass => ("pass".to_string(), r.worst_case.clone()),
                Status::Fail(_) => ("FAIL".to_string(), String::new()),
                Status::Skipped(w) => (format!("skipped ({w})"), String::new()),
            };
            let case: String =
                if case.chars().count() > 90 { case.chars().take(87).chain("...".chars()).collect() } else { case };
            rows.push(vec![
                r.kind.name().into(),
                r.dtype.name().into(),
                status,
                r.cases.to_string(),
                format!("{:.2e}", r.worst_nmse),
                format!("{:.0e}", r.tolerance),
                case,
            ]);
        }
        println!(
            "conformance of {} against cpu-ref (seed {}, {} cases per op × dtype)\n",
            dev.name(),
            args.seed,
            args.cases
        );
        print!("{}", render(&rows));
        for r in &reports {
            if let Status::Fail(why) = &r.status {
                println!("\nFAIL {} {}: {why}", r.kind, r.dtype);
            }
        }
        if let Some(rej) = &rejections {
            if rej.is_empty() {
                println!("\ninvalid inputs: every op refused its bad inputs with an error naming the problem");
            } else {
                println!("\ninvalid inputs: {} problem(s)", rej.len());
                for f in rej {
                    println!("  {f}");
                }
            }
        }
        let skipped = reports.iter().filter(|r| matches!(r.status, Status::Skipped(_))).count();
        let passed = reports.iter().filter(|r| r.status == Status::Pass).count();
        println!("\n{passed} passed, {failed} failed, {skipped} skipped");
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
