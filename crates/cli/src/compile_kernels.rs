//! `omnifuse compile-kernels`: the CUDA compile gate. Every kernel variant the CUDA backend
//! may compile at run time goes through the same NVRTC path and options, to PTX for each
//! requested arch; `ptxas -v` then assembles each module and reports registers, shared
//! memory and spills per kernel. Exits non-zero on a compile error, or on any spill in the
//! GEMM and attention kernels. Needs NVRTC and ptxas (`ci/install.sh` fetches both from the
//! PyPI wheels), not a GPU.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use omnifuse_core::{Error, Result};
use serde_json::json;

use crate::table::render;

/// Arguments of `omnifuse compile-kernels`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Compute capabilities to compile for, as `80,90` (sm_80 and sm_90).
    #[arg(long, default_value = "80,90", value_delimiter = ',')]
    arch: Vec<u32>,
    /// Folder for the PTX files (kept for inspection).
    #[arg(long, default_value = "target/cuda-gate")]
    out: PathBuf,
    /// The ptxas to assemble with (default: $OMNIFUSE_PTXAS, the wheel's, or PATH's).
    #[arg(long)]
    ptxas: Option<PathBuf>,
    /// Also write the per-kernel table as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also compile the same sources for these AMD archs with `hipcc` (comma-separated, e.g.
    /// `gfx90a,gfx908,gfx940,gfx1030`), reporting VGPRs, occupancy, spills and LDS per kernel.
    #[arg(long, value_delimiter = ',')]
    hip_arch: Vec<String>,
    /// Skip the CUDA part (only with --hip-arch).
    #[arg(long)]
    no_cuda: bool,
}

/// What ptxas said about one kernel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelUsage {
    /// The entry function.
    pub name: String,
    /// Registers per thread.
    pub registers: u32,
    /// Static shared memory in bytes.
    pub smem: u32,
    /// Spill stores in bytes.
    pub spill_stores: u32,
    /// Spill loads in bytes.
    pub spill_loads: u32,
}

fn number_before(line: &str, unit: &str) -> Option<u32> {
    let at = line.find(unit)?;
    line[..at].trim_end().rsplit([' ', ',']).next()?.parse().ok()
}

/// Parse `ptxas -v` output into one entry per kernel.
pub fn parse_ptxas(text: &str) -> Vec<KernelUsage> {
    let mut out: Vec<KernelUsage> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or_default().to_string();
            out.push(KernelUsage { name, ..Default::default() });
        } else if let Some(k) = out.last_mut() {
            if line.contains("spill stores") {
                k.spill_stores = number_before(line, "bytes spill stores").unwrap_or(0);
                k.spill_loads = number_before(line, "bytes spill loads").unwrap_or(0);
            } else if line.contains("Used ") && line.contains("registers") {
                k.registers = number_before(line, "registers").unwrap_or(0);
                k.smem = number_before(line, "bytes smem").unwrap_or(0);
            }
        }
    }
    out
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    let mut code = if args.no_cuda {
        if args.hip_arch.is_empty() {
            return Err(Error::invalid("compile-kernels: --no-cuda leaves nothing to compile without --hip-arch"));
        }
        ExitCode::SUCCESS
    } else {
        run_cuda(&args)?
    };
    if !args.hip_arch.is_empty() && run_hip(&args)? != ExitCode::SUCCESS {
        code = ExitCode::from(1);
    }
    Ok(code)
}

/// The HIP half: every variant the HIP launch paths may use, and each tensor-core source once
/// (its matrix-multiply code is CUDA-only; on HIP it compiles to a trap), for every arch.
fn run_hip(args: &Args) -> Result<ExitCode> {
    if crate::compile_hip::hipcc().is_none() {
        println!("no hipcc found (set OMNIFUSE_HIPCC or install hipcc): the HIP compile gate is skipped");
        return Ok(ExitCode::SUCCESS);
    }
    let mut variants: Vec<(String, String)> = omnifuse_registry::hip_kernel_variants();
    for (file, defines) in omnifuse_registry::gpu_kernel_variants() {
        if file.ends_with("_tc.cu") && !variants.iter().any(|(f, _)| *f == file) {
            variants.push((file, defines));
        }
    }
    let archs: Vec<&str> = args.hip_arch.iter().map(String::as_str).collect();
    let t = std::time::Instant::now();
    let usage =
        crate::compile_hip::run_hip_gate(&variants, &archs, Path::new("kernels/include"), Path::new("kernels/gpu"))?;
    println!("hipcc compiled {} variant(s) for {} in {:.0?}", variants.len(), archs.join(","), t.elapsed());
    let mut rows = vec![
        ["arch", "source", "kernel", "VGPR", "SGPR", "AGPR", "occupancy", "scratch B", "spills", "LDS B"]
            .map(String::from)
            .to_vec(),
    ];
    let mut failures = Vec::new();
    for u in &usage {
        // A memory spill (VGPRs to scratch) fails GEMM and attention; SGPRs spilled into
        // VGPR lanes cost no memory traffic and are only reported.
        let spill_free = ["gemm", "attention"].iter().any(|p| u.file.starts_with(p));
        if spill_free && u.spills() {
            failures.push(format!("{} spills on {} ({} {})", u.name, u.arch, u.file, u.defines));
        }
        rows.push(vec![
            u.arch.clone(),
            u.file.clone(),
            u.name.clone(),
            u.vgprs.to_string(),
            u.sgprs.to_string(),
            u.agprs.to_string(),
            u.occupancy.to_string(),
            u.scratch_bytes.to_string(),
            u.vgpr_spill.to_string(),
            u.sgpr_spill.to_string(),
            u.lds_bytes.to_string(),
        ]);
    }
    print!("{}", render(&rows));
    if failures.is_empty() {
        println!(
            "HIP compile gate passed: {} kernel builds, no VGPR spills or scratch in GEMM or attention",
            usage.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for f in &failures {
            eprintln!("FAIL: {f}");
        }
        Ok(ExitCode::from(1))
    }
}

/// The CUDA half: NVRTC per arch, then `ptxas -v`.
fn run_cuda(args: &Args) -> Result<ExitCode> {
    let ptxas = args.ptxas.clone().or_else(omnifuse_registry::cuda_ptxas);
    let mut done = 0usize;
    let modules = omnifuse_registry::cuda_compile_gate(&args.arch, &args.out, |m| {
        done += 1;
        eprintln!("[{done}] nvrtc {} {} {}", m.target, m.source, m.defines);
    })?;
    println!("NVRTC compiled {} module(s) for {:?} into {}", modules.len(), args.arch, args.out.display());
    if modules.is_empty() {
        eprintln!("FAIL: no kernel variant to compile: the CUDA launch paths list none");
        return Ok(ExitCode::from(1));
    }
    let Some(ptxas) = ptxas else {
        println!("no ptxas found (set OMNIFUSE_PTXAS or pass --ptxas): registers and spills not checked");
        return Ok(ExitCode::SUCCESS);
    };
    let mut rows = vec![
        ["target", "source", "kernel", "regs", "smem B", "spill st B", "spill ld B", "defines"]
            .map(String::from)
            .to_vec(),
    ];
    let mut json_rows = Vec::new();
    let mut failures = Vec::new();
    for m in &modules {
        let sm = m.target.replace("compute_", "sm_");
        let o = Command::new(&ptxas)
            .args([format!("-arch={sm}"), "-v".into(), m.ptx.clone(), "-o".into(), "/dev/null".into()])
            .output()
            .map_err(|e| Error::invalid(format!("running {}: {e}", ptxas.display())))?;
        let text = String::from_utf8_lossy(&o.stderr);
        if !o.status.success() {
            failures.push(format!("ptxas rejected {} ({} {}):\n{text}", m.ptx, m.source, m.defines));
            continue;
        }
        for k in parse_ptxas(&text) {
            if m.spill_free && (k.spill_stores > 0 || k.spill_loads > 0) {
                failures.push(format!(
                    "{} spills on {sm} ({} B stores, {} B loads) in {} {}",
                    k.name, k.spill_stores, k.spill_loads, m.source, m.defines
                ));
            }
            rows.push(vec![
                sm.clone(),
                m.source.clone(),
                k.name.clone(),
                k.registers.to_string(),
                k.smem.to_string(),
                k.spill_stores.to_string(),
                k.spill_loads.to_string(),
                m.defines.clone(),
            ]);
            json_rows.push(json!({
                "target": sm, "source": m.source, "defines": m.defines, "kernel": k.name,
                "registers": k.registers, "smem_bytes": k.smem,
                "spill_store_bytes": k.spill_stores, "spill_load_bytes": k.spill_loads,
            }));
        }
    }
    print!("{}", render(&rows));
    if let Some(path) = &args.json {
        let doc = json!({"archs": args.arch, "ptxas": ptxas.display().to_string(), "kernels": json_rows, "failures": failures});
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default())
            .map_err(|e| Error::invalid(format!("writing {}: {e}", path.display())))?;
    }
    if failures.is_empty() {
        println!("compile gate passed: {} kernel builds, no spills in GEMM or attention", json_rows.len());
        Ok(ExitCode::SUCCESS)
    } else {
        for f in &failures {
            eprintln!("FAIL: {f}");
        }
        Ok(ExitCode::from(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptxas_report_is_parsed_per_kernel() {
        let text = "ptxas info    : 0 bytes gmem\n\
ptxas info    : Compiling entry function 'gemm_tc_f16' for 'sm_80'\n\
ptxas info    : Function properties for gemm_tc_f16\n    \
8 bytes stack frame, 12 bytes spill stores, 16 bytes spill loads\n\
ptxas info    : Used 168 registers, used 1 barriers, 32768 bytes smem, 400 bytes cmem[0]\n\
ptxas info    : Compiling entry function 'k2' for 'sm_80'\n\
ptxas info    : Function properties for k2\n    \
0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
ptxas info    : Used 16 registers, used 0 barriers, 376 bytes cmem[0]\n";
        let k = parse_ptxas(text);
        assert_eq!(k.len(), 2);
        assert_eq!(
            k[0],
            KernelUsage { name: "gemm_tc_f16".into(), registers: 168, smem: 32768, spill_stores: 12, spill_loads: 16 }
        );
        assert_eq!(k[1], KernelUsage { name: "k2".into(), registers: 16, ..Default::default() });
    }
}
