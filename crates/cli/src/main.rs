//! `omnifuse`: the command-line front of the omnifuse compute backend.
//!
//! Exit codes: 0 success, 1 a check found a failure, 2 bad input or an unusable device.

mod accuracy;
mod attention;
mod bench;
mod check;
mod client;
mod compile_hip;
mod compile_kernels;
mod embed;
mod fit_head;
mod import;
mod index;
mod info;
mod init_model;
mod kernels;
mod kernels_int8;
mod overload;
mod peers;
mod quantize;
mod rss;
mod run;
mod serve;
mod table;
mod timing;
mod tune;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// omnifuse: a compute backend and benchmark suite for omni-modal inference.
///
/// Devices are named `cpu` (fast SIMD tier, all cores), `cpu-ref` (reference tier),
/// `opencl[:P[:D]]`, `cuda[:N]`, `hip[:N]`. `omnifuse info` shows which exist here.
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
    /// Run one request (text, images, audio, video in any mix) through the omni-modal model.
    Run(run::Args),
    /// Sentence embeddings from a pretrained text encoder (e.g. all-MiniLM-L6-v2): one
    /// normalised vector per sentence.
    Embed(embed::Args),
    /// Convert a published model directory (sentence-transformers) into an omnifuse one.
    Import(import::Args),
    /// Write a built-in model (config.toml + model.safetensors) to a directory.
    InitModel(init_model::Args),
    /// Write an INT8 copy of a model directory (Linear weights per output channel).
    Quantize(quantize::Args),
    /// Accuracy loss of a lower precision against FP32 on the same inputs, per head and stage.
    Accuracy(accuracy::Args),
    /// Train a classification head as a linear probe over the frozen FP32 model, on labelled
    /// requests (the built-in seeded set by default).
    FitHead(fit_head::Args),
    /// Build or list a retrieval index that `run --index` searches.
    Index(index::Args),
    /// Benchmark the model: MLPerf-style scenarios (single-stream, multi-stream, server,
    /// offline) on a seeded omni-modal workload, with JSON/HTML reports and run comparison.
    Bench(bench::Args),
    /// Serve the model over HTTP: a unified JSON API, async jobs, retrieval indexes, the Open
    /// Inference Protocol v2 and Prometheus metrics, with dynamic batching and API keys.
    Serve(serve::Args),
    /// Talk to a running server: run a request, submit and follow jobs, probe health, and
    /// check that it answers every request exactly once under overload.
    Client(client::Args),
    /// Time candidate GEMM tile sizes on an OpenCL device and keep the fastest for it.
    Tune(tune::Args),
    /// The GPU compile gates: compile every CUDA kernel variant with NVRTC for sm_80/sm_90,
    /// assemble with `ptxas -v`, report registers, shared memory and spills; with --hip-arch
    /// also every source with hipcc for AMD archs. No GPU needed.
    CompileKernels(compile_kernels::Args),
}

/// An error of any layer, reported on stderr with exit code 2.
enum Failure {
    Core(omnifuse_core::Error),
    Model(omnifuse_model::Error),
    Serve(String),
    Client(omnifuse_client::ClientError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Core(e) => e.fmt(f),
            Failure::Model(e) => e.fmt(f),
            Failure::Serve(e) => e.fmt(f),
            Failure::Client(e) => e.fmt(f),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Kernels(a) = &cli.command {
        kernels::pin_peer_threads(a);
    }
    let result = match cli.command {
        Command::Info(a) => info::run(a).map_err(Failure::Core),
        Command::Kernels(a) => kernels::run(a).map_err(Failure::Core),
        Command::Check(a) => check::run(a).map_err(Failure::Core),
        Command::Run(a) => run::run(a).map_err(Failure::Model),
        Command::Embed(a) => embed::run(a).map_err(Failure::Model),
        Command::Import(a) => import::run(a).map_err(Failure::Model),
        Command::InitModel(a) => init_model::run(a).map_err(Failure::Model),
        Command::Quantize(a) => quantize::run(a).map_err(Failure::Model),
        Command::Accuracy(a) => accuracy::run(a).map_err(Failure::Model),
        Command::FitHead(a) => fit_head::run(a).map_err(Failure::Model),
        Command::Index(a) => index::run(a).map_err(Failure::Model),
        Command::Bench(a) => bench::run(a).map_err(Failure::Model),
        Command::Serve(a) => serve::run_command(a).map_err(Failure::Serve),
        Command::Client(a) => client::run(a).map_err(Failure::Client),
        Command::Tune(a) => tune::run(a).map_err(Failure::Core),
        Command::CompileKernels(a) => compile_kernels::run(a).map_err(Failure::Core),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
