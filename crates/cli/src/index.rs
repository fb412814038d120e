//! `omnifuse index`: build and inspect the retrieval index that `omnifuse run --index`
//! searches — each input's embedding from the model's retrieval head, kept in one JSON file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use omnifuse_model::config::HeadKind;
use omnifuse_model::index::Index;
use omnifuse_model::output::HeadResult;
use omnifuse_model::request::Parameters;
use omnifuse_model::{Error, Result};

use crate::run::{ModelArgs, gather};

/// Arguments of `omnifuse index`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Embed inputs with the model's retrieval head and add them to the index (created when
    /// missing).
    Add(AddArgs),
    /// Show what an index holds.
    List {
        /// The index file.
        #[arg(long)]
        index: PathBuf,
    },
}

/// Arguments of `omnifuse index add`.
#[derive(clap::Args, Debug)]
struct AddArgs {
    /// The index file.
    #[arg(long)]
    index: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// Retrieval head to use (default: the model's first).
    #[arg(long)]
    head: Option<String>,
    /// A text to index; repeatable.
    #[arg(long)]
    text: Vec<String>,
    /// Files to index (images, audio, video, .txt), each on its own.
    files: Vec<PathBuf>,
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    match args.action {
        Action::Add(a) => add(a),
        Action::List { index } => {
            let ix = Index::load(&index)?;
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for e in &ix.entries {
                *counts.entry(e.modality.as_str()).or_default() += 1;
            }
            let c: Vec<String> = counts.iter().map(|(m, n)| format!("{n} {m}")).collect();
            println!(
                "{}: {} entries ({}) of {}-d embeddings from {}/{}",
                index.display(),
                ix.entries.len(),
                c.join(", "),
                ix.dim,
                ix.model,
                ix.head
            );
            for e in &ix.entries {
                println!("  {:<6} {}", e.modality, e.key);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn add(a: AddArgs) -> Result<ExitCode> {
    let model = a.model.open()?;
    let head = match &a.head {
        Some(h) => model.config().head(h).filter(|h| matches!(h.kind, HeadKind::Retrieval { .. })),
        None => model.config().heads.iter().find(|h| matches!(h.kind, HeadKind::Retrieval { .. })),
    }
    .ok_or_else(|| Error::Request(format!("the model has no retrieval head {}", a.head.as_deref().unwrap_or(""))))?;
    let (head_name, dim) = match &head.kind {
        HeadKind::Retrieval { dim } => (head.name.clone(), *dim),
        _ => return Err(Error::Request("internal: not a retrieval head".into())),
    };
    let mut ix = Index::open_or_new(&a.index, &model.config().model.name, &head_name, dim)?;
    let (inputs, keys, _) = gather(None, &a.text, &a.files)?;
    let params = Parameters { tasks: vec![head_name.clone()], ..Parameters::default() };
    // Each input alone, so its embedding does not depend on what else was indexed with it.
    for (input, key) in inputs.iter().zip(keys) {
        let r = model.run(std::slice::from_ref(input), &params)?;
        let modality = r.inputs.first().map(|i| i.modality).ok_or_else(|| Error::Request("no input".into()))?;
        match r.heads.get(&head_name) {
            Some(HeadResult::Retrieval { inputs, .. }) if !inputs.is_empty() => {
                ix.add(key.clone(), modality, inputs[0].clone())?;
                println!("added {modality} {key}");
            }
            _ => return Err(Error::Request(format!("head {head_name} gave no embedding"))),
        }
    }
    ix.save(&a.index)?;
    println!("{} now holds {} entries", a.index.display(), ix.entries.len());
    Ok(ExitCode::SUCCESS)
}
