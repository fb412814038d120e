//! `omnifuse init-model`: write a built-in preset as a model directory (config.toml and
//! model.safetensors with its seeded weights), to inspect, edit or load with `--model`.

use std::path::PathBuf;
use std::process::ExitCode;

use omnifuse_model::weights::Weights;
use omnifuse_model::{Config, Model, Result};

/// Arguments of `omnifuse init-model`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory to write (created when missing).
    #[arg(long)]
    out: PathBuf,
    /// Preset: omni-small or omni-base.
    #[arg(long, default_value = "omni-small")]
    preset: String,
    /// Seed of the weights (default: the preset's).
    #[arg(long)]
    seed: Option<u64>,
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    let mut config = Config::preset(&args.preset)?;
    if let Some(s) = args.seed {
        config.model.seed = s;
    }
    let weights = Weights::generate(&config)?;
    Model::save(&args.out, &config, &weights)?;
    println!("wrote {} ({} parameters) to {}", config.model.name, weights.parameters(), args.out.display());
    Ok(ExitCode::SUCCESS)
}
