//! `omnifuse quantize`: write an INT8 model directory from an f32 one (or a built-in preset):
//! every `Linear` weight quantised symmetrically per output channel (step `max|row| / 127`,
//! stored as I8 with an F32 `<name>_scale` vector), the rest kept f32; the config carries the
//! layers kept in f32 (`[quant] keep_fp32`). By default activations are quantised per token
//! at run time, which needs no calibration. With `--calib builtin|DIR` the FP32 model first
//! runs a calibration set (every head, the caption decoder's steps included) and every `Linear`
//! input gets one static per-tensor step (`<weight>_input_scale`, `[quant] activations =
//! "static-<method>"`) chosen by `--method`: minmax, percentile (`--percentile`) or entropy
//! (KL). `--smooth ALPHA` applies SmoothQuant before quantising (layers reading a layer
//! norm's output only; see the model crate's `smooth` module).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use omnifuse_harness::accuracy::Dataset;
use omnifuse_harness::inputs::load as load_inputs;
use omnifuse_model::calibrate::{Method, apply, collect};
use omnifuse_model::model::{TOKENIZER_FILE, WEIGHTS_FILE};
use omnifuse_model::smooth::smooth;
use omnifuse_model::weights::{Weights, spec};
use omnifuse_model::{Config, Error, Model, Result};
use omnifuse_registry::{OpenOptions, open_with};

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
    /// Static activation threshold with --calib: minmax (the largest |x| seen), percentile
    /// (--percentile of |x|) or entropy (the KL-divergence-minimising clip). Weights are
    /// always per output channel min-max.
    #[arg(long, default_value = "minmax")]
    method: String,
    /// Percentile of |x| for --method percentile, in (0, 100].
    #[arg(long, default_value_t = 99.99)]
    percentile: f64,
    /// Calibration inputs for static per-tensor activation steps: `builtin` (seeded requests
    /// over every modality) or a directory of input files (one request per file). Without
    /// it, activations are quantised per token at run time.
    #[arg(long)]
    calib: Option<String>,
    /// Requests of the built-in calibration set.
    #[arg(long, default_value_t = 32)]
    calib_requests: usize,
    /// Seed of the built-in calibration set.
    #[arg(long, default_value_t = 7)]
    calib_seed: u64,
    /// SmoothQuant migration strength α in [0, 1] (needs --calib): per-channel activation
    /// outliers moved into the weights of the layers that read a layer norm's output.
    #[arg(long)]
    smooth: Option<f32>,
}

/// The calibration requests `--calib` names.
fn calibration_set(args: &Args, spec: &str) -> Result<Vec<Vec<omnifuse_model::input::RawInput>>> {
    if spec == "builtin" {
        if args.calib_requests == 0 {
            return Err(Error::Request("--calib-requests must be at least 1".into()));
        }
        return Ok(Dataset::builtin(args.calib_requests, args.calib_seed)
            .items
            .into_iter()
            .map(|i| i.inputs)
            .collect());
    }
    let dir = Path::new(spec);
    if !dir.is_dir() {
        return Err(Error::Config(format!("--calib {spec}: expected `builtin` or a directory of input files")));
    }
    let (requests, _) = load_inputs(dir).map_err(|e| Error::Request(e.0))?;
    if requests.is_empty() {
        return Err(Error::Request(format!("--calib {spec}: the directory holds no inputs")));
    }
    Ok(requests)
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    let method = Method::parse(&args.method, args.percentile)?;
    if args.calib.is_none() {
        if args.smooth.is_some() {
            return Err(Error::Config(
                "--smooth needs calibration data to measure activation outliers: add --calib builtin or --calib DIR"
                    .into(),
            ));
        }
        if method != Method::MinMax {
            return Err(Error::Config(format!(
                "--method {}: static activation thresholds need calibration data: add --calib builtin or --calib DIR \
                 (without it, activations are quantised per token at run time)",
                args.method
            )));
        }
    }
    if let Some(a) = args.smooth
        && !(0.0..=1.0).contains(&a)
    {
        return Err(Error::Config(format!("--smooth {a}: expected α in [0, 1]")));
    }
    let calib = args.calib.as_deref().map(|c| calibration_set(&args, c)).transpose()?;
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
    let mut statics = 0;
    let mut stats = None;
    if let Some(requests) = &calib {
        let backend = open_with("cpu", OpenOptions::default())?;
        let tok = tokenizer.as_deref();
        let mut fp32 = Model::new(config.clone(), &weights, backend.clone(), tok)?;
        let (layers, shared) = collect(&mut fp32, requests)?;
        stats = Some(layers);
        if let (Some(alpha), Some(layers)) = (args.smooth, &stats) {
            let done = smooth(&mut weights, layers, &shared, alpha)?;
            println!("smoothed {} Linear layers behind {} layer norms (α = {alpha})", done.layers(), done.norms.len());
            // The smoothed model's activations differ: measure them again.
            let mut fp32 = Model::new(config.clone(), &weights, backend, tok)?;
            stats = Some(collect(&mut fp32, requests)?.0);
            config.quant.smooth = Some(alpha);
        }
    }
    let n = weights.quantize_int8(&spec(&config), &config.quant.keep_fp32)?;
    if let Some(layers) = &stats {
        statics = apply(&mut weights, layers, method)?;
        config.quant.activations = format!("static-{}", method.name());
    }
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
    match &args.calib {
        Some(c) => println!(
            "  activations: static per-tensor steps ({}) for {statics} Linear layers from --calib {c}; the rest per token",
            method.name()
        ),
        None => println!("  activations: per token at run time"),
    }
    println!(
        "  weights file {:.2} MB, the f32 model's {:.2} MB{}: {:.1}%",
        written as f64 / 1e6,
        before as f64 / 1e6,
        if source.is_some() { " file" } else { " of tensors" },
        100.0 * written as f64 / before.max(1) as f64
    );
    Ok(ExitCode::SUCCESS)
}
