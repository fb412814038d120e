//! `omnifuse fit-head`: train classification heads as linear probes over the frozen model.
//! Every request of a labelled set runs through the encoders and the fusion transformer once,
//! in FP32, and its pooled fused row is kept; softmax regression on the rows and their labels
//! ([`omnifuse_model::probe::fit`]) replaces each head's weight and bias.
//!
//! The L2 strength is chosen on validation data by the one-standard-error rule unless given.
//! Strong regularisation matters beyond generalisation: a head with large weights along weak
//! feature directions also magnifies any rounding error there, so the rule keeps the head's
//! answers stable under lower precisions too. Validation is a held-out seeded set (seed + 1),
//! or with --dataset every fifth request.
//!
//! `--out` ending in `.safetensors` writes the fitted heads' tensors alone (how the
//! `omni-small` preset's fitted sentiment head is made); any other `--out` is a whole model
//! directory.

use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::ProgressBar;
use omnifuse_harness::accuracy::Dataset;
use omnifuse_model::config::{HeadConfig, HeadKind, Pool};
use omnifuse_model::probe::{self, Probe};
use omnifuse_model::weights::Weights;
use omnifuse_model::{Config, Error, Model, Precision, Result};

use crate::run::ModelArgs;

/// Arguments of `omnifuse fit-head`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// A classification head to fit, by name; repeatable. Default: every one.
    #[arg(long = "head")]
    heads: Vec<String>,
    /// A directory of inputs with a labels.tsv (`FILE<TAB>CLASS`); classes must be the head's
    /// labels. Default: the built-in seeded set, whose classes are moods (negative, neutral,
    /// positive).
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Training requests of the built-in set.
    #[arg(long, default_value_t = 600)]
    requests: usize,
    /// Seed of the built-in training set (keep it apart from `accuracy --seed`, 1 by default).
    #[arg(long, default_value_t = 9001)]
    seed: u64,
    /// Requests of the built-in validation set (seed + 1).
    #[arg(long, default_value_t = 200)]
    holdout: usize,
    /// L2 strength of the classification regression, or `auto`: fit each of 1e-3, 1e-2,
    /// 0.1, 1 and 10 and keep the strongest whose validation accuracy is within one standard
    /// error of the best (the simplest model the data cannot tell from the best).
    #[arg(long, default_value = "auto")]
    l2: String,
    /// Gradient steps of the classification regression.
    #[arg(long, default_value_t = 500)]
    iterations: usize,
    /// Where to write: `FILE.safetensors` (the fitted heads' tensors) or a model directory.
    #[arg(long)]
    out: PathBuf,
}

/// Pooled FP32 rows of a set of requests, with each request's name and label.
struct Rows {
    rows: Vec<Vec<f32>>,
    items: Vec<(String, Option<String>)>,
}

impl Rows {
    fn labels(&self, labels: &[String]) -> Result<Vec<usize>> {
        self.items
            .iter()
            .map(|(name, label)| {
                let Some(label) = label else {
                    return Err(Error::Request(format!("{name}: no label (labels.tsv names every training file)")));
                };
                labels.iter().position(|l| l == label).ok_or_else(|| {
                    Error::Request(format!("{name}: label '{label}' is not one of the head's {labels:?}"))
                })
            })
            .collect()
    }

    /// Every fifth row (`val`) or the others.
    fn fifth(&self, val: bool) -> Rows {
        let keep = |i: usize| (i % 5 == 4) == val;
        Rows {
            rows: self.rows.iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, r)| r.clone()).collect(),
            items: self.items.iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, r)| r.clone()).collect(),
        }
    }
}

/// The pooled FP32 row of every item (`pool` of the fused sequence).
fn pooled(model: &Model, data: &Dataset, pool: Pool, what: &str) -> Result<Rows> {
    let width = model.config().model.width;
    let bar = ProgressBar::new(data.items.len() as u64);
    crate::accuracy::style_requests(&bar, what.to_string());
    let mut rows = Vec::with_capacity(data.items.len());
    for item in &data.items {
        let trace = model.trace(&item.inputs).map_err(|e| Error::Request(format!("{}: {e}", item.name)))?;
        let Some((_, z)) = trace.iter().rev().find(|(stage, _)| stage == "fusion") else {
            return Err(Error::Request(format!("{}: the model gave no fused sequence", item.name)));
        };
        let tokens = z.len() / width.max(1);
        if tokens == 0 || tokens * width != z.len() {
            return Err(Error::Request(format!(
                "{}: fused sequence of {} values, not rows of {width}",
                item.name,
                z.len()
            )));
        }
        rows.push(match pool {
            Pool::Mean => (0..width)
                .map(|j| ((0..tokens).map(|t| z[t * width + j] as f64).sum::<f64>() / tokens as f64) as f32)
                .collect(),
            Pool::Cls => z[..width].to_vec(),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(Rows { rows, items: data.items.iter().map(|i| (i.name.clone(), i.label.clone())).collect() })
}

/// The L2 strengths `--l2 auto` tries.
const L2_GRID: [f64; 5] = [1e-3, 1e-2, 0.1, 1.0, 10.0];

/// Fit classification head `h` (labels `labels`): its weight and bias.
/// `--l2`: a strength, or `None` for `auto`.
fn parse_l2(v: &str) -> Result<Option<f64>> {
    if v == "auto" {
        return Ok(None);
    }
    v.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(Some)
        .ok_or_else(|| Error::Config(format!("--l2 '{v}': expected a number ≥ 0 or auto")))
}

/// Fit classification head `h` (labels `labels`) with L2 strength `l2` (`None`: chosen on
/// `val`): its weight and bias.
fn fit_classifier(
    args: &Args,
    l2: Option<f64>,
    h: &HeadConfig,
    labels: &[String],
    train: &Rows,
    val: &Rows,
) -> Result<Probe> {
    let (ty, vy) = (train.labels(labels)?, val.labels(labels)?);
    let l2 = match l2 {
        Some(l2) => l2,
        None => {
            let mut scored = Vec::with_capacity(L2_GRID.len());
            for l2 in L2_GRID {
                let acc = probe::fit(&train.rows, &ty, labels.len(), l2, args.iterations)?.accuracy(&val.rows, &vy);
                println!("  {}: l2 {l2:<6} validation accuracy {:.2}%", h.name, 100.0 * acc);
                scored.push((l2, acc));
            }
            let best = scored.iter().map(|s| s.1).fold(0.0f64, f64::max);
            let se = (best * (1.0 - best) / vy.len().max(1) as f64).sqrt();
            scored.iter().filter(|s| s.1 >= best - se).map(|s| s.0).fold(L2_GRID[0], f64::max)
        }
    };
    let p = probe::fit(&train.rows, &ty, labels.len(), l2, args.iterations)?;
    println!(
        "{}: softmax regression, l2 {l2}: training accuracy {:.2}%, validation accuracy {:.2}% ({} and {} requests)",
        h.name,
        100.0 * p.accuracy(&train.rows, &ty),
        100.0 * p.accuracy(&val.rows, &vy),
        ty.len(),
        vy.len()
    );
    Ok(p)
}

/// The config and weights the model options name (the preset's weights, or a directory's).
fn config_and_weights(args: &ModelArgs) -> Result<(Config, Weights)> {
    match &args.model {
        Some(dir) => {
            let (config, weights, _) = Model::read_dir(dir)?;
            Ok((config, weights))
        }
        None => {
            let config = Config::preset(&args.preset)?;
            let weights = Weights::generate(&config)?;
            Ok((config, weights))
        }
    }
}

fn host(shape: &[usize], v: &[f32]) -> Result<omnifuse_core::HostTensor> {
    Ok(omnifuse_core::HostTensor::from_slice(shape, v)?)
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    let l2 = parse_l2(&args.l2)?;
    let model = args.model.open_in(Some(Precision::Fp32))?;
    let all = &model.config().heads;
    let heads: Vec<HeadConfig> = if args.heads.is_empty() {
        all.iter().filter(|h| matches!(h.kind, HeadKind::Classification { .. })).cloned().collect()
    } else {
        args.heads
            .iter()
            .map(|n| {
                let h = all.iter().find(|h| &h.name == n).ok_or_else(|| {
                    let names: Vec<&str> = all.iter().map(|h| h.name.as_str()).collect();
                    Error::Config(format!("no head '{n}': the model has {names:?}"))
                })?;
                match h.kind {
                    HeadKind::Classification { .. } => Ok(h.clone()),
                    _ => Err(Error::Config(format!(
                        "head '{n}' is {}; fit-head fits classification heads",
                        h.kind.name()
                    ))),
                }
            })
            .collect::<Result<_>>()?
    };
    if heads.is_empty() {
        return Err(Error::Config("the model has no classification head to fit".into()));
    }
    let (train_set, val_set) = match &args.dataset {
        Some(dir) => (Dataset::load(dir).map_err(Error::Request)?, None),
        None if args.requests == 0 => return Err(Error::Request("--requests must be at least 1".into())),
        None if args.holdout == 0 => return Err(Error::Request("--holdout must be at least 1".into())),
        None => (
            Dataset::builtin(args.requests, args.seed),
            Some(Dataset::builtin(args.holdout, args.seed.wrapping_add(1))),
        ),
    };
    let (config, mut weights) = config_and_weights(&args.model)?;
    let mut written = Vec::new();
    for pool in [Pool::Mean, Pool::Cls] {
        let mine: Vec<&HeadConfig> = heads
            .iter()
            .filter(|h| matches!(&h.kind, HeadKind::Classification { pool: p, .. } if *p == pool))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let all_rows = pooled(&model, &train_set, pool, "fp32 rows")?;
        let (train, val) = match &val_set {
            Some(v) => (all_rows, pooled(&model, v, pool, "validation rows")?),
            None => (all_rows.fifth(false), all_rows.fifth(true)),
        };
        if train.rows.is_empty() || val.rows.is_empty() {
            return Err(Error::Request("fit-head needs at least five requests (one in five validates)".into()));
        }
        for h in mine {
            let name = format!("heads.{}", h.name);
            if let HeadKind::Classification { labels, .. } = &h.kind {
                let p = fit_classifier(&args, l2, h, labels, &train, &val)?;
                weights.replace(&format!("{name}.weight"), host(&[p.classes, p.dim], &p.weight)?)?;
                weights.replace(&format!("{name}.bias"), host(&[p.classes], &p.bias)?)?;
                written.extend([format!("{name}.weight"), format!("{name}.bias")]);
            }
        }
    }
    if args.out.extension().is_some_and(|e| e == "safetensors") {
        weights.subset(&written)?.save(&args.out)?;
        println!("wrote {} to {}", written.join(", "), args.out.display());
    } else {
        Model::save(&args.out, &config, &weights)?;
        println!("wrote {} with the fitted heads to {}", config.model.name, args.out.display());
    }
    Ok(ExitCode::SUCCESS)
}
