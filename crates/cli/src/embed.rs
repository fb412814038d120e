//! `omnifuse embed`: sentence embeddings from a pretrained text encoder (an omnifuse
//! text-encoder directory written by `omnifuse import`, or a sentence-transformers directory
//! as published) — one L2-normalised vector per sentence, every sentence of a batch in one
//! graph run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use omnifuse_model::sentence::SentenceEncoder;
use omnifuse_model::{Error, Precision, Result};
use omnifuse_registry::{OpenOptions, open_with};

/// Arguments of `omnifuse embed`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Text-encoder directory: `encoder.toml` (from `omnifuse import`) or a sentence-transformers
    /// directory (`modules.json`, e.g. all-MiniLM-L6-v2).
    #[arg(long)]
    model: PathBuf,
    /// Device to run on (see `omnifuse info`).
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Numeric precision: fp32; fp16 (f16 storage, f32 arithmetic); or int8 (dense layers'
    /// weights per output channel, activations per token; embeddings, norms, attention and
    /// pooling stay f32).
    #[arg(long, default_value = "fp32")]
    precision: String,
    /// CPU threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Sentences to embed, in order (before those of --file).
    sentences: Vec<String>,
    /// A UTF-8 file with one sentence per line (an empty line is an empty sentence).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Print JSON ({"model", "backend", "dim", "embeddings": [[…], …]}) instead of one line of
    /// space-separated values per sentence.
    #[arg(long)]
    json: bool,
    /// With --json, add each sentence's token ids ("ids": [[…], …]).
    #[arg(long)]
    ids: bool,
    /// Most sentences per graph run (also bounded by 8192 tokens).
    #[arg(long, default_value_t = omnifuse_model::sentence::BATCH_SENTENCES)]
    batch: usize,
    /// Report the time spent (load, tokenise, encode) and sentences per second on stderr.
    #[arg(long)]
    timing: bool,
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    let precision: Precision = args.precision.parse()?;
    let mut texts = args.sentences.clone();
    if let Some(path) = &args.file {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        texts.extend(text.lines().map(str::to_string));
    }
    if texts.is_empty() {
        return Err(Error::Request("no sentences: give them as arguments or with --file".into()));
    }
    let t0 = Instant::now();
    let backend = open_with(&args.backend, OpenOptions { threads: args.threads })?;
    let mut encoder = SentenceEncoder::load_in(&args.model, backend, precision)?;
    encoder.set_max_batch(args.batch);
    let load_ms = ms(t0);
    let t1 = Instant::now();
    let out = encoder.embed(&texts)?;
    let embed_ms = ms(t1);
    if args.timing {
        let tokens: usize = out.ids.iter().map(Vec::len).sum();
        eprintln!(
            "embed: {} sentences, {tokens} tokens; load {load_ms:.1} ms, tokenise + encode {embed_ms:.1} ms, {:.1} \
             sentences/s on {}",
            texts.len(),
            texts.len() as f64 / (embed_ms / 1e3).max(1e-9),
            encoder.backend_name()
        );
    }
    if args.json {
        let mut v = serde_json::json!({
            "model": encoder.spec().encoder.name,
            "backend": encoder.backend_name(),
            "dim": encoder.dim(),
            "embeddings": out.vectors,
        });
        if args.ids {
            v["ids"] = serde_json::json!(out.ids);
        }
        let text = serde_json::to_string(&v).map_err(|e| Error::Request(e.to_string()))?;
        println!("{text}");
    } else {
        let mut s = String::new();
        for row in &out.vectors {
            let line: Vec<String> = row.iter().map(|x| x.to_string()).collect();
            s.push_str(&line.join(" "));
            s.push('\n');
        }
        print!("{s}");
    }
    Ok(ExitCode::SUCCESS)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
