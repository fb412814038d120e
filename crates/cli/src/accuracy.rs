//! `omnifuse accuracy`: the same inputs through the FP32 model and a lower precision, in one
//! run, and what the precision costs — per head (classification top-1 agreement and accuracy,
//! retrieval recall and rank agreement, embedding cosine, generation token agreement), per
//! stage (SQNR of each encoder and the fusion output), and as MLPerf reports it (percent of
//! FP32 quality against the 99% and 99.9% targets).

use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use omnifuse_harness::accuracy::{Dataset, Report, evaluate};
use omnifuse_model::{Error, Precision, Result};

use crate::run::ModelArgs;

/// Arguments of `omnifuse accuracy`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The precision to measure against FP32: int8 or fp16.
    #[arg(long, default_value = "int8")]
    precision: String,
    /// A directory of inputs (one request per file) with an optional labels.tsv
    /// (`FILE<TAB>CLASS[<TAB>PAIR]`); default: the built-in seeded dataset.
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Requests of the built-in dataset.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Seed of the built-in dataset.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The FP32 model directory to compare with (default: --model/--preset itself in fp32);
    /// needed when --model is a directory `omnifuse quantize` wrote.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn render(r: &Report, precision: Precision) -> String {
    let mut s = format!("accuracy of {precision} against fp32 on {}: {} requests", r.dataset, r.requests);
    if r.failed > 0 {
        s += &format!(", {} failed ({})", r.failed, r.errors.join("; "));
    }
    s.push('\n');
    for h in &r.heads {
        s += &format!("  {} ({}, {} requests)\n", h.head, h.kind, h.requests);
        if let Some(a) = h.top1_agreement {
            s += &format!("    top-1 agreement with fp32  {}\n", pct(a));
        }
        if let Some((median, flipped)) = h.top1_margin {
            s += &format!(
                "    fp32 top-1/top-2 probability gap median {median:.2e}; largest gap that flipped {flipped:.2e}\n"
            );
        }
        if let Some((a, b)) = h.accuracy {
            s += &format!("    accuracy                    fp32 {}  {precision} {}\n", pct(a), pct(b));
        }
        if let Some((mean, min)) = h.cosine {
            s += &format!("    embedding cosine            mean {mean:.6}  min {min:.6}\n");
        }
        if let Some(a) = h.r1_agreement {
            s += &format!("    R@1 agreement with fp32     {}\n", pct(a));
        }
        if let Some((median, flipped)) = h.r1_margin {
            s += &format!(
                "    fp32 top-1/top-2 cosine gap median {median:.2e}; largest gap that flipped {flipped:.2e}\n"
            );
        }
        if let Some([r1, r5]) = h.recall {
            s += &format!(
                "    recall@1                    fp32 {}  {precision} {}\n    recall@5                    fp32 {}  {precision} {}\n",
                pct(r1.0),
                pct(r1.1),
                pct(r5.0),
                pct(r5.1)
            );
        }
        if let Some((tok, seq)) = h.token_agreement {
            s += &format!("    token agreement             {}  (whole sequences equal {})\n", pct(tok), pct(seq));
        }
        let verdict = |t: f64| if h.quality_pct >= t { "met" } else { "NOT met" };
        s += &format!(
            "    quality {:.2}% of fp32 (MLPerf targets: 99% {}, 99.9% {})\n",
            h.quality_pct,
            verdict(99.0),
            verdict(99.9)
        );
    }
    s += "  SQNR by stage (fp32 as signal; higher is better):\n";
    for (stage, db) in &r.sqnr_db {
        s += &format!("    {stage:<16} {db:6.1} dB\n");
    }
    s
}

/// Style `bar` as a count of requests run, after `prefix` (shared with `fit-head`).
pub fn style_requests(bar: &ProgressBar, prefix: String) {
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} requests, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    let precision: Precision = args.precision.parse()?;
    if precision == Precision::Fp32 {
        return Err(Error::Config("--precision fp32 compares fp32 with itself: choose int8 or fp16".into()));
    }
    let data = match &args.dataset {
        Some(dir) => Dataset::load(dir).map_err(Error::Request)?,
        None if args.requests == 0 => return Err(Error::Request("--requests must be at least 1".into())),
        None => Dataset::builtin(args.requests, args.seed),
    };
    let reference = match &args.reference {
        Some(dir) => {
            let backend = omnifuse_registry::open_with(
                &args.model.backend,
                omnifuse_registry::OpenOptions { threads: args.model.threads },
            )?;
            omnifuse_model::Model::load_in(dir, backend, Precision::Fp32)?
        }
        None => args.model.open_in(Some(Precision::Fp32)).map_err(|e| match (&args.model.model, e) {
            (Some(dir), Error::Config(m)) => Error::Config(format!(
                "{m}; to measure the INT8 directory {} give the fp32 model it was made from with --reference DIR",
                dir.display()
            )),
            (_, e) => e,
        })?,
    };
    let target = args.model.open_in(Some(precision))?;
    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(data.items.len() as u64) };
    style_requests(&bar, format!("fp32 vs {precision}"));
    let report = evaluate(&reference, &target, &data, |done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    if args.json {
        let mut v = serde_json::to_value(&report).map_err(|e| Error::Request(e.to_string()))?;
        v["precision"] = serde_json::json!(precision.name());
        v["model"] = serde_json::json!(reference.config().model.name);
        v["min_quality_pct"] = serde_json::json!(report.min_quality_pct());
        println!("{v}");
    } else {
        print!("{}", render(&report, precision));
    }
    Ok(if report.failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
