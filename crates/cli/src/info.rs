//! `omnifuse info`: what this build contains and what it finds on this machine.

use std::process::ExitCode;

use omnifuse_core::Result;
use omnifuse_registry::{OpenOptions, backends, probe};
use serde_json::json;

use crate::table::render;

/// Arguments of `omnifuse info`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// CPU threads for the CPU device's peak probe (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    let entries = backends();
    let devices = probe(OpenOptions { threads: args.threads });
    let features = omnifuse_cpu::features::detect();
    if args.json {
        let devs: Vec<_> = devices
            .iter()
            .map(|d| match &d.info {
                Ok(i) => json!({
                    "name": d.name, "available": true, "backend": i.backend, "device_name": i.device_name,
                    "kind": i.kind.name(), "compute_units": i.compute_units, "memory_bytes": i.memory_bytes,
                    "arch": i.arch, "features": i.features, "peak_gflops_f32": i.peak_gflops_f32,
                    "peak_source": i.peak_source,
                }),
                Err(why) => json!({"name": d.name, "available": false, "reason": why}),
            })
            .collect();
        let out = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "backends": entries.iter().map(|b| json!({"family": b.family, "compiled": b.compiled, "note": b.note})).collect::<Vec<_>>(),
            "devices": devs,
            "cpu_features": features,
            "simd_level": omnifuse_cpu::features::Isa::active().name(),
            "gemm_f32_kernel": omnifuse_cpu::fast::gemm::f32_kernel_name(),
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    println!("omnifuse {}\n", env!("CARGO_PKG_VERSION"));
    let mut rows = vec![vec!["backend".into(), "compiled in".into(), "note".into()]];
    for b in &entries {
        rows.push(vec![b.family.into(), if b.compiled { "yes" } else { "no" }.into(), b.note.into()]);
    }
    println!("{}", render(&rows));
    let mut rows = vec![vec!["device".into(), "status".into(), "details".into(), "est. peak f32".into()]];
    for d in &devices {
        match &d.info {
            Ok(i) => rows.push(vec![
                d.name.clone(),
                "available".into(),
                format!(
                    "{} ({}, {} units, {:.1} GiB)",
                    i.device_name,
                    i.arch,
                    i.compute_units,
                    i.memory_bytes as f64 / (1u64 << 30) as f64
                ),
                i.peak_gflops_f32.map_or("-".into(), |p| format!("{p:.0} GFLOP/s ({})", i.peak_source)),
            ]),
            Err(why) => rows.push(vec![d.name.clone(), "absent".into(), why.clone(), "-".into()]),
        }
    }
    println!("{}", render(&rows));
    println!("CPU features: {}", features.join(" "));
    let avail: Vec<&str> = omnifuse_cpu::features::Isa::available().iter().map(|i| i.name()).collect();
    println!(
        "SIMD level of the fast tier: {} (available: {}; OMNIFUSE_CPU_ISA caps it)",
        omnifuse_cpu::features::Isa::active().name(),
        avail.join(", ")
    );
    println!("f32 GEMM micro-kernel: {}", omnifuse_cpu::fast::gemm::f32_kernel_name());
    Ok(ExitCode::SUCCESS)
}
