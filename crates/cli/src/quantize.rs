//! `omnifuse quantize`: write an INT8 model directory from an f32 one (or a built-in preset):
//! every `Linear` weight quantised symmetrically per output channel (step `max|row| / 127`,
//! stored as I8 with an F32 `<name>_scale` vector), the rest kept f32; the config carries the
//! layers kept in f32 (`[quant] keep_fp32`). Activations are quantised per token at run time,
//! so no calibration set is needed for this scheme; the static-activation methods
//! (percentile, entropy) and SmoothQuant need one and are refused with that reason.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use omnifuse_model::model::{TOKENIZER_FILE, WEIGHTS_FILE};
use omnifuse_model::weights::{Weights, spec};
use omnifuse_model::{Config, Error, Model, Result};

/// Arguments of `omnifuse quantize`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The f32 model directory (default: the built-in preset).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Built-in model when --model is not given: omni-small or omni-base.
    #[arg(long, default_value = "omni-small")]
    preset: String,
    /// Directory to write (created when missing).
    #[arg(long)]
    out: PathBuf,
    /// Weight-name prefix to keep in f32 (repeatable), added to the config's `[quant]
    /// keep_fp32`; e.g. `--keep heads.caption.lm`.
    #[arg(long = "keep")]
    keep: Vec<String>,
    /// Weight method: minmax (the per-channel maximum; the only one weights need).
    #[arg(long, default_value = "minmax")]
    method: String,
    /// Calibration inputs for static activation scales (not used by per-token activations).
    #[arg(long)]
    calib: Option<String>,
    /// SmoothQuant migration strength α (needs calibration; not available yet).
    #[arg(long)]
    smooth: Option<f32>,
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    if args.method != "minmax" {
        return Err(Error::Config(format!(
            "--method {}: activations are quantised per token at run time, which needs no calibration; static \
             per-tensor activation scales (percentile, entropy) are not available yet. Use --method minmax",
            args.method
        )));
    }
    if args.smooth.is_some() || args.calib.is_some() {
        return Err(Error::Config(
            "--smooth/--calib: SmoothQuant and static calibration are not available yet; per-token activation \
             quantisation (the default) needs neither"
                .into(),
        ));
    }
    let (mut config, mut weights, tokenizer, source) = match &args.model {
        Some(dir) => {
            let (c, w, t) = Model::read_dir(dir)?;
            (c, w, t, Some(dir.join(WEIGHTS_FILE)))
        }
        None => {
            let c = Config::preset(&args.preset)?;
            let w = Weights::generate(&c)?;
            (c, w, None, None)
        }
    };
    if weights.iter().any(|(_, t)| t.desc.dtype == omnifuse_core::DType::I8) {
        return Err(Error::Config("the model is already INT8".into()));
    }
    let f32_bytes = weights.bytes();
    for k in args.keep {
        if !config.quant.keep_fp32.contains(&k) {
            config.quant.keep_fp32.push(k);
        }
    }
    let n = weights.quantize_int8(&spec(&config), &config.quant.keep_fp32)?;
    Model::save(&args.out, &config, &weights)?;
    if let Some(t) = tokenizer {
        std::fs::copy(&t, args.out.join(TOKENIZER_FILE))
            .map_err(|e| Error::io(format!("copying {}", t.display()), e))?;
    }
    let written = file_size(&args.out.join(WEIGHTS_FILE));
    let before = match &source {
        Some(p) => file_size(p),
        None => f32_bytes as u64,
    };
    println!(
        "wrote {} (INT8: {n} Linear weights per output channel, {} kept in f32) to {}",
        config.model.name,
        config.quant.keep_fp32.len(),
        args.out.display()
    );
    println!(
        "  weights file {:.2} MB, the f32 model's {:.2} MB{}: {:.1}%",
        written as f64 / 1e6,
        before as f64 / 1e6,
        if source.is_some() { " file" } else { " of tensors" },
        100.0 * written as f64 / before.max(1) as f64
    );
    Ok(ExitCode::SUCCESS)
}
