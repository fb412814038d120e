//! Running `omnifuse bench`: open the model, build the workload, run the scenario (and the
//! peak search or the offline pair), measure accuracy when the precision is lower, then print
//! and write the reports.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use omnifuse_harness::accuracy::{self, Dataset, Item};
use omnifuse_harness::driver::policy;
use omnifuse_harness::machine::Machine;
use omnifuse_harness::record::Run;
use omnifuse_harness::remote::HttpTarget;
use omnifuse_harness::report::{Report, Setup};
use omnifuse_harness::scenario::{Settings, multi_stream, server, single_stream};
use omnifuse_harness::target::{ModelTarget, Target};
use omnifuse_harness::validity::Criteria;
use omnifuse_harness::{compare, html, inputs, offline, peak, schedule, workload};
use omnifuse_model::request::Parameters;
use omnifuse_model::{Error, Model, Precision, Result};
use serde_json::json;

use super::args::Args;
use super::{progress, summary};

fn request_error(e: impl std::fmt::Display) -> Error {
    Error::Request(e.to_string())
}

/// The command line, quoted where an argument has spaces.
fn command_line() -> String {
    std::env::args()
        .map(|a| if a.contains(char::is_whitespace) || a.is_empty() { format!("'{a}'") } else { a })
        .collect::<Vec<_>>()
        .join(" ")
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::Request(format!("writing {}: {e}", path.display())))
}

/// Run the command.
pub fn run(args: Args) -> Result<ExitCode> {
    if let Some(files) = &args.compare {
        let (a, b) = match files.as_slice() {
            [a, b] => (compare::load(a).map_err(Error::Request)?, compare::load(b).map_err(Error::Request)?),
            _ => return Err(Error::Request("--compare takes two JSON reports: A.json B.json".into())),
        };
        let rows = compare::rows(&a, &b).map_err(Error::Request)?;
        let rows: Vec<Vec<String>> = rows.into_iter().map(|r| r.to_vec()).collect();
        println!("A = {}\nB = {}\n", files[0].display(), files[1].display());
        print!("{}", crate::table::render(&rows));
        return Ok(ExitCode::SUCCESS);
    }
    args.check()?;
    let precision: Precision = args.precision.parse()?;
    let quiet = args.json_to_stdout();
    let (pool, workload_name) = match &args.inputs {
        Some(dir) => inputs::load(dir).map_err(request_error)?,
        None => {
            let mix = workload::parse_mix(&args.mix).map_err(request_error)?;
            (workload::generate(&mix, args.queries, args.seed), format!("mix {}", args.mix))
        }
    };
    let params = Parameters { tasks: args.tasks.clone(), max_tokens: args.max_tokens, ..Parameters::default() };
    let (model, target): (Option<Arc<Model>>, Arc<dyn Target>) = match &args.target {
        Some(url) => {
            if precision != Precision::Fp32 {
                return Err(Error::Request(format!(
                    "--precision {precision} with --target: the server's precision is chosen where it runs (omnifuse serve --precision)"
                )));
            }
            let key = crate::client::api_key(args.api_key_file.as_deref()).map_err(request_error)?;
            let wire = omnifuse_client::Parameters {
                tasks: params.tasks.clone(),
                max_tokens: params.max_tokens,
                ..omnifuse_client::Parameters::default()
            };
            let t = HttpTarget::new(url, key.as_deref(), wire, &pool).map_err(request_error)?;
            (None, Arc::new(t))
        }
        None => {
            let mut model = args.model.open_in(Some(precision))?;
            model.select_heads(&params.tasks)?;
            // One untimed request first, so lazy set-up (kernel caches, first allocations)
            // is not timed; the feature cache starts empty after it.
            if let Some(first) = pool.first() {
                let _ = model.run(first, &params);
            }
            model.set_feature_cache(args.feature_cache_mb << 20);
            let model = Arc::new(model);
            (Some(model.clone()), Arc::new(ModelTarget::new(model, params.clone())))
        }
    };
    // A remote target answers one untimed request first (connections, the server's warm-up);
    // if it cannot, the run stops here with the reason.
    if let (Some(first), true) = (pool.first(), model.is_none())
        && let Some(Err(e)) = target.run_batch(&[first]).pop()
    {
        return Err(Error::Request(format!("the target does not answer: {e}")));
    }
    let pool = Arc::new(pool);
    let (backend, model_name) = match &model {
        Some(m) => (m.backend_name(), m.config().model.name.clone()),
        None => (args.target.clone().unwrap_or_default(), "omnifuse serve".to_string()),
    };
    let batching = args.batching_on();
    let grouping = batching && args.grouping_on();
    let mut pol = policy(batching, args.batch, Duration::from_secs_f64(args.max_delay_ms / 1e3));
    pol.grouping = grouping;
    let settings = Settings { duration_s: args.duration, min_queries: args.min_queries, seed: args.seed };
    let mut setup = Setup {
        scenario: args.scenario.clone(),
        backend: backend.clone(),
        model: model_name,
        precision: precision.name().to_string(),
        batching,
        grouping,
        max_batch: args.batch,
        max_delay_ms: args.max_delay_ms,
        workload: workload_name,
        pool: pool.len(),
        seed: args.seed,
        target_qps: None,
        samples_per_query: 1,
        command: command_line(),
        machine: Machine::detect(omnifuse_cpu::features::Isa::active().name(), &backend),
    };
    let timed = |label: &str, seconds: f64| progress::timed(label, seconds, quiet);
    let mut criteria = Criteria {
        min_duration_s: Some(args.duration),
        min_queries: args.min_queries,
        quantile: 0.99,
        latency_bound_ms: None,
    };
    let (run, extra) = match args.scenario.as_str() {
        "single-stream" => {
            criteria.quantile = 0.9;
            let bar = timed("single-stream", args.duration);
            let run = single_stream::run(target.as_ref(), &pool, &settings, &|v| progress::show(&bar, v));
            bar.finish_and_clear();
            (run.map_err(Error::Request)?, None)
        }
        "multi-stream" => {
            setup.samples_per_query = args.samples_per_query;
            let bar = timed("multi-stream", args.duration);
            let run = multi_stream::run(target, pool.clone(), pol, args.samples_per_query, &settings, &|v| {
                progress::show(&bar, v)
            });
            bar.finish_and_clear();
            (run.map_err(Error::Request)?, None)
        }
        "server" => {
            criteria.latency_bound_ms = Some(args.latency_bound);
            let server_run = |qps: f64, s: &Settings, label: &str| {
                let bar = timed(label, s.duration_s);
                let r = server::run(target.clone(), pool.clone(), pol.clone(), qps, s, &|v| progress::show(&bar, v));
                bar.finish_and_clear();
                r.map_err(Error::Request)
            };
            if args.find_peak {
                let probe_settings = Settings { duration_s: args.probe_duration, min_queries: 0, ..settings };
                let mut k = 0;
                let found = peak::find(args.qps, args.peak_tolerance, args.peak_probes, |qps| {
                    k += 1;
                    let r = server_run(qps, &probe_settings, &format!("peak probe {k} at {qps:.2} QPS"))
                        .map_err(|e| e.to_string())?;
                    let report =
                        Report::new(&setup, &r, &Criteria { min_duration_s: None, min_queries: 1, ..criteria.clone() });
                    let pass = r.failed() == 0 && r.queries() > 0 && report.latency_ms.p99 <= args.latency_bound;
                    Ok(peak::Probe { qps, achieved_qps: report.qps, p99_ms: report.latency_ms.p99, pass })
                })
                .map_err(Error::Request)?;
                let half = found.qps / 2.0;
                let half_run = server_run(half, &settings, &format!("server at 50% of peak, {half:.2} QPS"))?;
                let half_report = Report::new(&Setup { target_qps: Some(half), ..setup.clone() }, &half_run, &criteria);
                setup.target_qps = Some(found.qps);
                let run = server_run(found.qps, &settings, &format!("server at peak, {:.2} QPS", found.qps))?;
                let extra = json!({
                    "peak_qps": found.qps,
                    "tolerance": args.peak_tolerance,
                    "probe_duration_s": args.probe_duration,
                    "probes": found.probes,
                    "half_peak": {
                        "target_qps": half,
                        "qps": half_report.qps,
                        "queries": half_report.queries,
                        "duration_s": half_report.duration_s,
                        "latency_ms": half_report.latency_ms,
                        "valid": half_report.valid,
                        "validity": half_report.validity,
                    },
                });
                (run, Some(("find_peak", extra)))
            } else {
                setup.target_qps = Some(args.qps);
                (server_run(args.qps, &settings, &format!("server at {:.2} QPS", args.qps))?, None)
            }
        }
        _ => {
            criteria.min_duration_s = None;
            let bar = progress::steps("offline, batching off and on", args.rounds, "rounds", quiet);
            let r = offline::run(target.as_ref(), &pool, args.batch, grouping, args.rounds, |_, _| bar.inc(1));
            bar.finish_and_clear();
            let (off, on) = (r.single.samples_per_second(r.queries), r.batched.samples_per_second(r.queries));
            let extra = json!({
                "rounds": args.rounds,
                "off": {"batch": 1, "samples_per_s": off, "median_round_s": r.single.median_seconds(), "failed": r.single.failed},
                "on": {"batch": r.batched.batch, "grouping": r.batched.grouping, "samples_per_s": on, "median_round_s": r.batched.median_seconds(), "failed": r.batched.failed},
                "gain": r.gain(),
            });
            let run: Run = if batching { r.batched.run } else { r.single.run };
            (run, Some(("offline", extra)))
        }
    };
    let mut report = Report::new(&setup, &run, &criteria);
    match extra {
        Some(("offline", v)) => report.offline = Some(v),
        Some((_, v)) => report.find_peak = Some(v),
        None => {}
    }
    if let (Some(model), true) = (&model, precision != Precision::Fp32 && args.accuracy_samples > 0) {
        report.accuracy = Some(measure_accuracy(&args, model, &pool, quiet)?);
    }
    if !quiet {
        print!("{}", summary::render(&report));
    }
    if let Some(path) = &args.json {
        if quiet {
            println!("{}", report.to_json());
        } else {
            write(path, &report.to_json())?;
            println!("JSON report: {}", path.display());
        }
    }
    if let Some(path) = &args.html {
        write(path, &html::render(&report, &run))?;
        if !quiet {
            println!("HTML report: {}", path.display());
        }
    }
    Ok(if report.valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// A seeded sample of the workload through FP32 and the model's precision.
fn measure_accuracy(
    args: &Args,
    model: &omnifuse_model::Model,
    pool: &[workload::Request],
    quiet: bool,
) -> Result<serde_json::Value> {
    let reference = args.model.open_in(Some(Precision::Fp32))?;
    let picks = schedule::picks(args.accuracy_samples, pool.len(), args.seed.wrapping_add(0xacc));
    let items = picks
        .iter()
        .enumerate()
        .map(|(i, &p)| Item {
            name: format!("sample-{i} (request {p})"),
            inputs: pool[p].clone(),
            label: None,
            pair: None,
        })
        .collect();
    let data = Dataset { name: format!("{} seeded requests of the workload", args.accuracy_samples), items };
    let bar = progress::steps(&format!("accuracy, fp32 vs {}", model.precision()), data.items.len(), "requests", quiet);
    let r = accuracy::evaluate(&reference, model, &data, |done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    let mut v = serde_json::to_value(&r).map_err(request_error)?;
    v["min_quality_pct"] = json!(r.min_quality_pct());
    Ok(v)
}
