//! `omnifuse bench`: the benchmark harness from the command line. Today the `offline` scenario:
//! a seeded omni-modal workload run with dynamic batching off and on in the same process,
//! alternating rounds, reporting samples/s of each and their ratio.

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use omnifuse_harness::{offline, workload};
use omnifuse_model::request::Parameters;
use omnifuse_model::{Error, Result};
use serde_json::json;

use crate::run::ModelArgs;

/// Arguments of `omnifuse bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Scenario: offline (every query available at once; samples/s).
    #[arg(long, default_value = "offline")]
    scenario: String,
    /// Modality mix: weights per request kind, e.g. text=0.4,image=0.3,audio=0.3 or
    /// text+image=1 (sizes: text 8–64 words, images 160–320 px a side, audio 1–3 s,
    /// video 4–12 frames of 160×120).
    #[arg(long, default_value = "text=0.4,image=0.3,audio=0.3")]
    mix: String,
    /// Requests per round.
    #[arg(long, default_value_t = 64)]
    queries: usize,
    /// Requests per batch when batching is on.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Rounds of each configuration (medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seed of the workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Heads to run (as `run --task`); all heads by default.
    #[arg(long = "task")]
    tasks: Vec<String>,
    /// Most generated tokens per request for generation heads.
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    if args.scenario != "offline" {
        return Err(Error::Request(format!("scenario '{}' is not implemented yet: only offline is", args.scenario)));
    }
    if args.queries == 0 || args.batch == 0 || args.rounds == 0 {
        return Err(Error::Request("--queries, --batch and --rounds must be at least 1".into()));
    }
    let mix = workload::parse_mix(&args.mix).map_err(|e| Error::Request(e.to_string()))?;
    let model = args.model.open()?;
    let params = Parameters { tasks: args.tasks.clone(), max_tokens: args.max_tokens, ..Parameters::default() };
    model.select_heads(&params.tasks)?;
    let requests = workload::generate(&mix, args.queries, args.seed);
    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(args.rounds as u64) };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} rounds ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("offline, {} requests, batching off and on", args.queries));
    let r = offline::run(&model, &requests, &params, args.batch, args.rounds, |_, _| bar.inc(1));
    bar.finish_and_clear();
    let (off, on) = (r.single.samples_per_second(r.queries), r.batched.samples_per_second(r.queries));
    if args.json {
        let v = json!({
            "scenario": "offline",
            "backend": model.backend_name(),
            "model": model.config().model.name,
            "precision": "fp32",
            "mix": args.mix,
            "queries": r.queries,
            "rounds": args.rounds,
            "seed": args.seed,
            "batching": {
                "off": {"batch": 1, "samples_per_s": off, "median_s": r.single.median_seconds(), "failed": r.single.failed},
                "on": {"batch": args.batch, "samples_per_s": on, "median_s": r.batched.median_seconds(), "failed": r.batched.failed},
            },
            "gain": r.gain(),
            "command": std::env::args().collect::<Vec<_>>().join(" "),
        });
        println!("{}", serde_json::to_string_pretty(&v).map_err(|e| Error::Request(e.to_string()))?);
    } else {
        println!(
            "offline: {} on {}, {} requests of {} (seed {}), medians of {} alternating rounds",
            model.config().model.name,
            model.backend_name(),
            r.queries,
            args.mix,
            args.seed,
            args.rounds
        );
        println!("  batching off (batch 1)   {off:8.1} samples/s   {:.3} s/round", r.single.median_seconds());
        println!(
            "  batching on  (batch {:<3}) {on:8.1} samples/s   {:.3} s/round",
            args.batch,
            r.batched.median_seconds()
        );
        println!("  gain: {:.2}×", r.gain());
        if r.single.failed + r.batched.failed > 0 {
            println!("  failed requests: {} (off), {} (on)", r.single.failed, r.batched.failed);
        }
    }
    Ok(ExitCode::SUCCESS)
}
