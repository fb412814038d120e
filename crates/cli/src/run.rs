//! `omnifuse run`: one request through the omni-modal model — text, image, audio and video
//! inputs in any mix, every asked head answered from one forward pass, with the time spent
//! per layer. Inputs come from flags and files, or from a JSON request file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use omnifuse_model::index::{Index, attach_matches};
use omnifuse_model::input::RawInput;
use omnifuse_model::output::Response;
use omnifuse_model::request::{Parameters, Request};
use omnifuse_model::{Error, Model, Precision, Result};
use omnifuse_registry::{OpenOptions, open_with};

/// Which model, on which device: the options every model command shares.
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// Model directory (config.toml, model.safetensors, optional tokenizer.json); without it
    /// the built-in preset runs.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Built-in preset used when no --model is given: omni-small or omni-base.
    #[arg(long, default_value = "omni-small")]
    pub preset: String,
    /// Device to run on (see `omnifuse info`).
    #[arg(long, default_value = "cpu")]
    pub backend: String,
    /// CPU threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl ModelArgs {
    /// Open the model these options name.
    pub fn open(&self) -> Result<Model> {
        let backend = open_with(&self.backend, OpenOptions { threads: self.threads })?;
        match &self.model {
            Some(dir) => Model::load(dir, backend),
            None => Model::preset(&self.preset, backend),
        }
    }

    /// Open the model these options name, in `precision` (`None`: as its weights are).
    pub fn open_in(&self, precision: Option<Precision>) -> Result<Model> {
        let Some(p) = precision else { return self.open() };
        let backend = open_with(&self.backend, OpenOptions { threads: self.threads })?;
        match &self.model {
            Some(dir) => Model::load_in(dir, backend, p),
            None => Model::preset_in(&self.preset, backend, p),
        }
    }
}

/// Arguments of `omnifuse run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Numeric precision: fp32; fp16 (f16 storage, f32 arithmetic in each op); or int8 (Linear
    /// weights per output channel, activations per token, i32 accumulation; norms, softmax,
    /// attention and residuals stay f32). Default: as the model's weights are (a directory
    /// from `omnifuse quantize` is int8).
    #[arg(long)]
    precision: Option<String>,
    /// Head to answer, by name (e.g. sentiment), kind (classification, retrieval, generation)
    /// or task (captioning, visual_question_answering, …); repeatable; all heads by default.
    #[arg(long = "task")]
    tasks: Vec<String>,
    /// A text input; repeatable. Text inputs come first, in order, then the files.
    #[arg(long)]
    text: Vec<String>,
    /// Input files: PNG/JPEG images, WAV audio, Y4M video (detected by content), or .txt text.
    files: Vec<PathBuf>,
    /// A JSON request: {"inputs":[{"text":…},{"image":"<base64>"},…],"parameters":{…}}; its
    /// inputs come before those of the flags.
    #[arg(long)]
    request: Option<PathBuf>,
    /// Most tokens the generation head produces (default: the head's config).
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Sampling temperature of the generation head; 0 (default) is greedy.
    #[arg(long)]
    temperature: Option<f32>,
    /// Sample only among the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Seed of the sampler (same seed, same output).
    #[arg(long)]
    seed: Option<u64>,
    /// Run the request this many times and report the median time per layer.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// A retrieval index (`omnifuse index add` fills it): each input's embedding is matched
    /// against the indexed entries of other modalities (text → image, image → text, …).
    #[arg(long)]
    index: Option<PathBuf>,
    /// Matches reported per input with --index.
    #[arg(long, default_value_t = 5)]
    matches: usize,
    /// Print JSON instead of a report.
    #[arg(long)]
    json: bool,
    /// Time every op launch and print a table of time per op (on stderr), slowest first: where
    /// the request's time goes. Also enabled by OMNIFUSE_PROFILE=1.
    #[arg(long)]
    profile: bool,
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    let precision = args.precision.as_deref().map(str::parse::<Precision>).transpose()?;
    if args.repeat == 0 {
        return Err(Error::Request("--repeat must be at least 1".into()));
    }
    let model = args.model.open_in(precision)?;
    let index = args.index.as_deref().map(Index::load).transpose()?;
    let (inputs, _, params) = gather(args.request.as_deref(), &args.text, &args.files)?;
    let params = Parameters {
        tasks: params.tasks.into_iter().chain(args.tasks.iter().cloned()).collect(),
        max_tokens: args.max_tokens.or(params.max_tokens),
        temperature: args.temperature.or(params.temperature),
        top_k: args.top_k.or(params.top_k),
        seed: args.seed.or(params.seed),
    };
    if args.profile {
        omnifuse_core::profile::enable();
    }
    let mut runs: Vec<Response> = Vec::with_capacity(args.repeat);
    for _ in 0..args.repeat {
        runs.push(model.run(&inputs, &params)?);
    }
    let mut response = runs.swap_remove(runs.len() / 2);
    if args.repeat > 1 {
        runs.push(response.clone());
        response.timing_ms = median_timing(&runs);
    }
    if let Some(ix) = &index {
        attach_matches(&mut response, ix, args.matches)?;
    }
    if args.json {
        let text = serde_json::to_string_pretty(&response).map_err(|e| Error::Request(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", response.render());
        if args.repeat > 1 {
            println!("  (times are medians of {} runs)", args.repeat);
        }
    }
    if omnifuse_core::profile::enabled() {
        eprintln!("time per op over {} run(s) (host-timed launches):", args.repeat);
        eprint!("{}", omnifuse_core::profile::report());
    }
    Ok(ExitCode::SUCCESS)
}

/// The inputs of a request file, then the texts, then the files; with a key naming each
/// (the text itself, the file path, or `request[i]`) and the request's parameters.
pub fn gather(
    request: Option<&Path>,
    texts: &[String],
    files: &[PathBuf],
) -> Result<(Vec<RawInput>, Vec<String>, Parameters)> {
    let (mut inputs, params) = match request {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            let r = Request::from_json(&text)?;
            (r.inputs, r.parameters)
        }
        None => (Vec::new(), Parameters::default()),
    };
    let mut keys: Vec<String> = (0..inputs.len()).map(|i| format!("request[{i}]")).collect();
    for t in texts {
        inputs.push(RawInput::Text(t.clone()));
        keys.push(t.clone());
    }
    for f in files {
        let bytes = std::fs::read(f).map_err(|e| Error::io(format!("reading {}", f.display()), e))?;
        let is_txt = f.extension().is_some_and(|e| e.eq_ignore_ascii_case("txt"));
        inputs.push(if is_txt {
            RawInput::Text(
                String::from_utf8(bytes)
                    .map_err(|e| Error::Request(format!("{} is not UTF-8 text: {e}", f.display())))?,
            )
        } else {
            RawInput::Bytes(bytes)
        });
        keys.push(f.display().to_string());
    }
    if inputs.is_empty() {
        return Err(Error::Request("no inputs: give --text, files, or --request".into()));
    }
    Ok((inputs, keys, params))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Per-layer medians over several runs of one request.
fn median_timing(runs: &[Response]) -> omnifuse_model::output::Timing {
    let mut t = runs[0].timing_ms.clone();
    let pick = |f: &dyn Fn(&Response) -> f64| median(runs.iter().map(f).collect());
    t.preprocess = pick(&|r| r.timing_ms.preprocess);
    t.fuse = pick(&|r| r.timing_ms.fuse);
    t.total = pick(&|r| r.timing_ms.total);
    for (k, v) in t.encode.iter_mut() {
        *v = pick(&|r| r.timing_ms.encode.get(k).copied().unwrap_or(0.0));
    }
    for (k, v) in t.heads.iter_mut() {
        *v = pick(&|r| r.timing_ms.heads.get(k).copied().unwrap_or(0.0));
    }
    t
}
