//! `omnifuse`: the command-line front of the omnifuse compute backend.
//!
//! Exit codes: 0 success, 1 a check found a failure, 2 bad input or an unusable device.

mod attention;
mod check;
mod info;
mod kernels;
mod peers;
mod table;
mod timing;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// omnifuse: a compute backend and benchmark suite for omni-modal inference.
///
/// Devices are named `cpu` (fast SIMD tier, all cores), `cpu-ref` (reference tier),
/// `opencl[:N]`, `cuda[:N]`, `hip[:N]`. `omnifuse info` shows which exist here.
#[derive(Parser, Debug)]
#[command(name = "omnifuse", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the backends compiled in, the devices found (or why not), CPU features and each
    /// device's measured peak.
    Info(info::Args),
    /// Time one kernel at one shape, next to a well-known peer in the same run.
    Kernels(kernels::Args),
    /// Run the conformance suite on a device against the CPU reference tier.
    Check(check::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Kernels(a) = &cli.command {
        kernels::pin_peer_threads(a);
    }
    let result = match cli.command {
        Command::Info(a) => info::run(a),
        Command::Kernels(a) => kernels::run(a),
        Command::Check(a) => check::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
