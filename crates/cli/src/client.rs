//! `omnifuse client`: talk to a running `omnifuse serve` — run a request (`infer`), submit
//! one as an asynchronous job (`submit`) and fetch, wait for or cancel it (`job`), probe
//! health (`health`), and check the server under overload (`overload`). Inputs are given as
//! arguments: an existing file's path is sent as that file (PNG/JPEG, WAV, Y4M by content;
//! `.txt` as text), anything else as text.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use omnifuse_client::{ClientError, HeadResult, Input, JobState, Parameters, Response, UnifiedModelClient};

use crate::overload;

/// The environment variable an API key may come from.
pub const KEY_ENV: &str = "OMNIFUSE_API_KEY";

/// Arguments of `omnifuse client`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = "\
The API key comes from --api-key-file (its first non-blank, non-# line) or the OMNIFUSE_API_KEY \
environment variable; without either, no key is sent (a server started with --no-auth).

Examples:
  omnifuse client infer --task sentiment \"a calm sea at dawn\" photo.png clip.wav
  omnifuse client infer --json --max-tokens 8 \"describe this\" photo.png
  ID=$(omnifuse client submit \"a calm sea\") && omnifuse client job \"$ID\" --wait
  omnifuse client health
  omnifuse client overload --server-pid $(pgrep -n omnifuse) --seconds 30")]
pub struct Args {
    /// The server's address.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    endpoint: String,
    /// A file holding the API key (else OMNIFUSE_API_KEY, else none).
    #[arg(long, global = true, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// Give up on a call after this many seconds (0: wait as long as the server takes).
    #[arg(long, global = true, default_value_t = 0)]
    timeout_s: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Run one request and print its answer (POST /v1/infer).
    Infer(RequestArgs),
    /// Submit one request as an asynchronous job and print its id (POST /v1/jobs).
    Submit(RequestArgs),
    /// Show a job's status or result; --wait waits for it to end, --cancel cancels it.
    Job(JobArgs),
    /// Whether the server is live and ready; exit 0 when ready, 1 when not.
    Health,
    /// Find the server's peak rate, drive it past it, and check that every request got
    /// exactly one answer (exit 0) or not (exit 1).
    Overload(overload::Args),
}

/// A request: its inputs and parameters.
#[derive(clap::Args, Debug)]
struct RequestArgs {
    /// Inputs, in order: a path to an existing file (PNG/JPEG image, WAV audio, Y4M video,
    /// .txt text) is sent as that file; anything else is sent as text.
    #[arg(required_unless_present = "text")]
    inputs: Vec<String>,
    /// A text input even if a file of that name exists; repeatable; sent after the others.
    #[arg(long)]
    text: Vec<String>,
    /// Head to answer, by name (e.g. sentiment), kind or task; repeatable; all by default.
    #[arg(long = "task")]
    tasks: Vec<String>,
    /// Most tokens the generation head produces.
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Sampling temperature of the generation head (0: greedy).
    #[arg(long)]
    temperature: Option<f32>,
    /// Sample among the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Seed of the sampler.
    #[arg(long)]
    seed: Option<u64>,
    /// Print the server's JSON instead of a report.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct JobArgs {
    /// The job's id, as `submit` printed it.
    id: String,
    /// Wait for the job to end and print its result.
    #[arg(long, conflicts_with = "cancel")]
    wait: bool,
    /// Cancel the job (or forget it, when it has ended).
    #[arg(long)]
    cancel: bool,
    /// Print JSON instead of a report.
    #[arg(long)]
    json: bool,
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode, ClientError> {
    let key = api_key(args.api_key_file.as_deref())?;
    let timeout = (args.timeout_s > 0).then(|| std::time::Duration::from_secs(args.timeout_s));
    let client = UnifiedModelClient::with_timeout(&args.endpoint, key.as_deref(), timeout)?;
    match args.command {
        Command::Infer(r) => {
            let (inputs, params) = request(&r)?;
            if r.json {
                print_json(&client.infer_json(&inputs, &params)?);
            } else {
                print!("{}", render(&client.infer(&inputs, &params)?));
            }
        }
        Command::Submit(r) => {
            let (inputs, params) = request(&r)?;
            let job = client.submit_async(&inputs, &params)?;
            if r.json {
                print_json(&serde_json::json!({"id": job.id(), "status": "pending"}));
            } else {
                println!("{}", job.id());
            }
        }
        Command::Job(j) => return job(&client, &j),
        Command::Health => {
            let (live, ready) = (client.health()?, client.ready()?);
            println!("{}: live {live}, ready {ready}", client.endpoint());
            return Ok(if ready { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        Command::Overload(o) => return overload::run(&client, &o),
    }
    Ok(ExitCode::SUCCESS)
}

fn job(client: &UnifiedModelClient, args: &JobArgs) -> Result<ExitCode, ClientError> {
    let job = client.job(&args.id)?;
    if args.cancel {
        let status = job.cancel()?;
        if args.json {
            print_json(&serde_json::json!({"id": job.id(), "status": status}));
        } else {
            println!("{} {status}", job.id());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let state = if args.wait {
        match job.result() {
            Ok(r) => JobState::Done(Box::new(r)),
            Err(ClientError::Http { status, message, .. }) if status != 404 => JobState::Failed { status, message },
            Err(ClientError::Job { .. }) => JobState::Cancelled,
            Err(e) => return Err(e),
        }
    } else {
        job.state()?
    };
    if args.json {
        let mut out = serde_json::json!({"id": job.id(), "status": state.name()});
        match &state {
            JobState::Done(r) => out["result"] = serde_json::to_value(r).unwrap_or_default(),
            JobState::Failed { status, message } => {
                out["error"] = serde_json::json!({"status": status, "message": message})
            }
            _ => {}
        }
        print_json(&out);
    } else {
        match &state {
            JobState::Done(r) => print!("{}", render(r)),
            JobState::Failed { status, message } => println!("{} failed: HTTP {status}: {message}", job.id()),
            other => println!("{} {}", job.id(), other.name()),
        }
    }
    Ok(match state {
        JobState::Failed { .. } | JobState::Cancelled if args.wait => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

/// The key from the file, else the environment, else none.
pub(crate) fn api_key(file: Option<&Path>) -> Result<Option<String>, ClientError> {
    if let Some(path) = file {
        let what = format!("API key file {}", path.display());
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Input { what: what.clone(), reason: format!("cannot read it: {e}") })?;
        let key = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
        return key.map(|k| Some(k.to_string())).ok_or(ClientError::Input {
            what,
            reason: "it holds no key: expected one key on a line (blank lines and # comments are skipped)".into(),
        });
    }
    Ok(std::env::var(KEY_ENV).ok().map(|k| k.trim().to_string()).filter(|k| !k.is_empty()))
}

/// The inputs (existing paths as files, the rest as text; then the --text ones) and the
/// parameters.
fn request(r: &RequestArgs) -> Result<(Vec<Input>, Parameters), ClientError> {
    let mut inputs = Vec::with_capacity(r.inputs.len() + r.text.len());
    for arg in &r.inputs {
        let path = Path::new(arg);
        inputs.push(if path.is_file() { Input::from_path(path)? } else { Input::text(arg.clone()) });
    }
    inputs.extend(r.text.iter().cloned().map(Input::Text));
    let params = Parameters {
        tasks: r.tasks.clone(),
        max_tokens: r.max_tokens,
        temperature: r.temperature,
        top_k: r.top_k,
        seed: r.seed,
    };
    Ok((inputs, params))
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
}

/// A short report of an answer, for people.
fn render(r: &Response) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let inputs: Vec<String> = r.inputs.iter().map(|i| format!("{} ({} tokens)", i.modality, i.tokens)).collect();
    let _ = writeln!(s, "{} on {}: {}", r.model, r.backend, inputs.join(", "));
    for (name, head) in &r.heads {
        let _ = match head {
            HeadResult::Classification { label, labels, probabilities } => {
                let p: Vec<String> = labels.iter().zip(probabilities).map(|(l, p)| format!("{l} {p:.3}")).collect();
                writeln!(s, "  {name}: {label}  ({})", p.join(", "))
            }
            HeadResult::Retrieval { fused, inputs, .. } => writeln!(
                s,
                "  {name}: {}-d embedding of the request and of each of {} input(s)",
                fused.len(),
                inputs.len()
            ),
            HeadResult::Generation { tokens, text, .. } => writeln!(s, "  {name}: {text:?} ({} tokens)", tokens.len()),
        };
    }
    let _ = writeln!(s, "  time (ms): total {:.1} on the server", r.timing_ms.total);
    s
}
