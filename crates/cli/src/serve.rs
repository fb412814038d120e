//! `omnifuse serve`: the HTTP server over one model — the unified JSON API, asynchronous
//! jobs, retrieval indexes, the Open Inference Protocol v2 and Prometheus metrics, with
//! dynamic batching, API keys and request limits. Settings come from an optional
//! `serve.toml`, with flags on top.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use omnifuse_http::auth::KEYS_ENV;
use omnifuse_http::{ApiKeys, ServeConfig, run, serve_models};

use omnifuse_model::Precision;

use crate::run::ModelArgs;

/// Arguments of `omnifuse serve`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = "\
Routes: POST /v1/infer, POST /v1/jobs, GET|DELETE /v1/jobs/ID, POST|GET /v1/index/NAME, \
GET /v1/search?index=NAME&text=...&k=5, POST /v1/search?index=NAME&k=5 (one input), GET /v2, /v2/health/live, /v2/health/ready, \
/v2/models/M, /v2/models/M/ready, /v2/models/M/config, /v2/models/M/stats, \
POST /v2/models/M/infer, GET /metrics.

Every route but the health probes needs `Authorization: Bearer KEY`. Keys come from \
--api-keys FILE (one per line) and the OMNIFUSE_API_KEYS environment variable (comma-separated). \
Without keys the server does not start unless --no-auth is given, which is allowed on a \
loopback address only (or with --allow-insecure-bind).

A --config file (TOML) may set: addr, max_body_bytes, request_timeout_ms, job_ttl_s, \
max_jobs, max_indexes, max_index_entries, [batching] max_batch, max_delay_ms, queue_capacity, max_inputs, grouping, \
[auth] api_keys_file, no_auth, allow_insecure_bind. Flags override it.

Example:
  omnifuse serve --no-auth &
  curl -s localhost:8080/v1/infer -d '{\"inputs\":[{\"text\":\"a calm sea at dawn\"}]}'")]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Name the model is served under (`/v2/models/NAME`).
    #[arg(long, default_value = "omni")]
    model_name: String,
    /// Numeric precision: fp32, fp16 or int8 (default: as the model's weights are).
    #[arg(long)]
    precision: Option<String>,
    /// A serve.toml with the server's settings (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// File of API keys, one per line (blank lines and # comments skipped).
    #[arg(long, value_name = "FILE")]
    api_keys: Option<PathBuf>,
    /// Serve without authentication; only on a loopback address unless --allow-insecure-bind.
    #[arg(long)]
    no_auth: bool,
    /// Allow --no-auth on a non-loopback address.
    #[arg(long, requires = "no_auth")]
    allow_insecure_bind: bool,
    /// Largest request body in bytes; larger bodies get 413 [default: 33554432 (32 MiB)].
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Most requests fused into one batch [default: 16].
    #[arg(long)]
    max_batch: Option<usize>,
    /// Longest the first request of a batch waits for others, in ms [default: 5].
    #[arg(long)]
    max_delay_ms: Option<u64>,
    /// Same-modality grouping: on, a batch holds requests of one modality mix (a request that
    /// has waited --max-delay-ms still leaves in the next batch whatever its mix); off, mixes
    /// share batches [default: off].
    #[arg(long, value_parser = ["on", "off"])]
    grouping: Option<String>,
    /// Most requests waiting; more are refused with 503 [default: 1024].
    #[arg(long)]
    queue_capacity: Option<usize>,
    /// Longest a request may wait in the queue before it is answered 504, in ms; 0: no limit
    /// [default: 30000].
    #[arg(long)]
    request_timeout_ms: Option<u64>,
    /// Seconds a finished job's result is kept for GET /v1/jobs/ID [default: 600].
    #[arg(long)]
    job_ttl_s: Option<u64>,
    /// Keep encoder outputs in a feature cache of this many MiB (0: off): a repeated image,
    /// clip or text skips its encoder. /metrics reports its hits, misses and bytes.
    #[arg(long, default_value_t = 0, value_name = "MIB")]
    feature_cache_mb: usize,
}

/// The settings: the config file's (or the defaults), then the flags.
fn settings(a: &Args) -> Result<ServeConfig, String> {
    let mut c = match &a.config {
        Some(p) => ServeConfig::load(p).map_err(|e| e.to_string())?,
        None => ServeConfig::default(),
    };
    if let Some(v) = a.addr {
        c.addr = v;
    }
    if let Some(v) = &a.api_keys {
        c.auth.api_keys_file = Some(v.clone());
    }
    c.auth.no_auth |= a.no_auth;
    c.auth.allow_insecure_bind |= a.allow_insecure_bind;
    let set = |dst: &mut usize, v: Option<usize>| {
        if let Some(v) = v {
            *dst = v;
        }
    };
    set(&mut c.max_body_bytes, a.max_body_bytes);
    set(&mut c.batching.max_batch, a.max_batch);
    set(&mut c.batching.queue_capacity, a.queue_capacity);
    if let Some(v) = a.max_delay_ms {
        c.batching.max_delay_ms = v;
    }
    if let Some(v) = &a.grouping {
        c.batching.grouping = v == "on";
    }
    if let Some(v) = a.request_timeout_ms {
        c.request_timeout_ms = v;
    }
    if let Some(v) = a.job_ttl_s {
        c.job_ttl_s = v;
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

/// Log lines on standard error through `tracing`, at the level of `RUST_LOG` (default `info`;
/// `debug` adds one line per request).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A subscriber already installed (by an embedding program) is kept.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Run the command.
pub fn run_command(args: Args) -> Result<ExitCode, String> {
    init_logging();
    let precision = args.precision.as_deref().map(str::parse::<Precision>).transpose().map_err(|e| e.to_string())?;
    let config = settings(&args)?;
    let env = std::env::var(KEYS_ENV).ok();
    let keys = ApiKeys::resolve(&config.auth, env.as_deref(), config.addr).map_err(|e| e.to_string())?;
    let mut model = args.model.open_in(precision).map_err(|e| e.to_string())?;
    model.set_feature_cache(args.feature_cache_mb << 20);
    let about = format!(
        "{} ({} parameters, {}) on {} as '{}'",
        model.config().model.name,
        model.parameters(),
        model.precision(),
        model.backend_name(),
        args.model_name
    );
    let models = serve_models(&config, vec![(args.model_name.clone(), model)]).map_err(|e| e.to_string())?;
    let auth = if keys.is_empty() { "authentication off".to_string() } else { format!("{} API key(s)", keys.len()) };
    run(config, models, keys, |addr| {
        eprintln!("omnifuse serve: {about}; listening on http://{addr} ({auth}); Ctrl-C stops");
    })
    .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}
