//! `omnifuse tune`: time candidate GEMM configurations on a device (the GPU-style tiled
//! kernel's tiles and the CPU-style `vec` kernel's blocks; the table lists tile sizes, the
//! tuning file and `omnifuse info` name the variant too), check each result, and store the fastest correct one for that
//! device; the backend uses it from its next start (`omnifuse kernels --tiles compare`
//! times it against the default). OpenCL devices only (the other backends have no tunable kernels yet).

use std::process::ExitCode;

use omnifuse_core::Result;
use serde_json::json;

use crate::table::render;

/// Arguments of `omnifuse tune`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Device to tune (`opencl`, `opencl:P`, `opencl:P:D`).
    #[arg(long, default_value = "opencl")]
    backend: String,
    /// Rows of the timed f32 GEMM.
    #[arg(long, default_value_t = 512)]
    m: usize,
    /// Columns of the timed GEMM.
    #[arg(long, default_value_t = 512)]
    n: usize,
    /// Reduction length of the timed GEMM.
    #[arg(long, default_value_t = 512)]
    k: usize,
    /// Timed launches per candidate.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    let r = omnifuse_registry::tune_gemm(&args.backend, args.m, args.n, args.k, args.reps)?;
    if args.json {
        let trials: Vec<_> = r
            .trials
            .iter()
            .map(|(cfg, res)| match res {
                Ok(g) => json!({"tiles": cfg, "gflops": g}),
                Err(why) => json!({"tiles": cfg, "rejected": why}),
            })
            .collect();
        let out = json!({
            "device": r.device, "file": r.file, "m": args.m, "n": args.n, "k": args.k, "trials": trials,
            "winner": r.winner.as_ref().map(|(c, g)| json!({"tiles": c, "gflops": g})),
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        println!("GEMM f32 {}x{}x{} on {}\n", args.m, args.n, args.k, r.device);
        let mut rows = vec![vec!["tiles".to_string(), "GFLOP/s".to_string()]];
        for (cfg, res) in &r.trials {
            rows.push(vec![
                cfg.clone(),
                res.as_ref().map_or_else(|why| format!("rejected: {why}"), |g| format!("{g:.1}")),
            ]);
        }
        println!("{}", render(&rows));
        match &r.winner {
            Some((cfg, g)) => println!("winner: {cfg} ({g:.1} GFLOP/s), stored in {}", r.file),
            None => println!("no candidate ran correctly; nothing stored"),
        }
    }
    Ok(if r.winner.is_some() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
