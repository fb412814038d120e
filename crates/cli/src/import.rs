//! `omnifuse import`: convert a published model directory into an omnifuse one. Today:
//! `--from sentence-transformers` (a BERT text encoder with pooling and normalisation, e.g.
//! all-MiniLM-L6-v2) → an omnifuse text-encoder directory (`encoder.toml`,
//! `model.safetensors`, `tokenizer.json`) that `omnifuse embed --model` loads; or, with
//! `--omni PRESET`, an omni-modal model directory (`config.toml`, `model.safetensors`,
//! `tokenizer.json`) for `omnifuse run --model`, whose text encoder is the pretrained BERT
//! (projected into the preset's width D; projection and all other parts are seeded-random).

use std::path::PathBuf;
use std::process::ExitCode;

use omnifuse_model::model::TOKENIZER_FILE;
use omnifuse_model::st_import::{ENCODER_FILE, omni_model, read_sentence_transformers};
use omnifuse_model::{Config, Error, Model, Result};

/// Arguments of `omnifuse import`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Format of the source directory: sentence-transformers.
    #[arg(long = "from")]
    from: String,
    /// The source directory.
    source: PathBuf,
    /// Directory to write (created when missing).
    #[arg(long)]
    out: PathBuf,
    /// Write an omni-modal model instead: this preset (omni-small, omni-base) with the imported
    /// BERT as its text encoder.
    #[arg(long)]
    omni: Option<String>,
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    if args.from != "sentence-transformers" {
        return Err(Error::Request(format!("--from '{}' is not known: expected sentence-transformers", args.from)));
    }
    let files = read_sentence_transformers(&args.source)?;
    if let Some(preset) = &args.omni {
        let (config, weights, tokenizer) = omni_model(&files, Config::preset(preset)?)?;
        Model::save(&args.out, &config, &weights)?;
        let tok = args.out.join(TOKENIZER_FILE);
        std::fs::write(&tok, tokenizer).map_err(|e| Error::io(format!("writing {}", tok.display()), e))?;
        println!(
            "wrote {} with {} as its text encoder ({} parameters) to {}",
            config.model.name,
            files.spec.encoder.name,
            weights.parameters(),
            args.out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    files.write(&args.out)?;
    let s = &files.spec;
    println!(
        "imported {} (BERT {}×{}, {} heads, {} parameters; {} pooling{}, max {} tokens) to {}",
        s.encoder.name,
        s.bert.layers,
        s.bert.width,
        s.bert.heads,
        files.parameters(),
        s.pooling.mode.name(),
        if s.pooling.normalize { ", normalised" } else { "" },
        s.tokenizer.max_tokens,
        args.out.join(ENCODER_FILE).display()
    );
    Ok(ExitCode::SUCCESS)
}
