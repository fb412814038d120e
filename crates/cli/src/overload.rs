//! `omnifuse client overload`: the check that every accepted request gets exactly one
//! answer under overload. It finds the server's peak rate with a closed loop (a few threads,
//! each sending its next request when the last is answered), then offers `factor` × that
//! rate open-loop (requests sent on a fixed schedule whatever the answers, each on a thread
//! of its own) for the given time, and tallies each request's one outcome: answered 200,
//! refused (429/503, which must carry a message), another status, or lost (no HTTP answer).
//! The server's own count of answers (`/metrics`) must equal the answers received — more
//! would be duplicates. The server's RSS is sampled throughout when its pid is given. Then
//! the server must serve normally: ready, and a run of requests all answered 200.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omnifuse_client::{ClientError, Input, Parameters, UnifiedModelClient};
use serde_json::{Value, json};

use crate::rss::{self, Sampler};

/// Arguments of `omnifuse client overload`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Threads of the closed loop that finds the peak rate: enough to fill the server's
    /// batches (twice its max batch), or the peak found is the latency's, not the capacity's.
    #[arg(long, default_value_t = 32)]
    threads: usize,
    /// Seconds the closed loop runs.
    #[arg(long, default_value_t = 5.0)]
    peak_seconds: f64,
    /// The offered rate, as a multiple of the peak.
    #[arg(long, default_value_t = 3.0)]
    factor: f64,
    /// Seconds of overload.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Most requests in flight at once; a request due beyond it is not sent (and counted).
    #[arg(long, default_value_t = 4096)]
    max_in_flight: usize,
    /// Requests sent one after another once the overload is over; all must be answered 200.
    #[arg(long, default_value_t = 20)]
    after_requests: usize,
    /// The server's process id, to sample its resident memory (from /proc/PID/status).
    #[arg(long)]
    server_pid: Option<u32>,
    /// The head each request asks for.
    #[arg(long, default_value = "sentiment")]
    task: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Each request's one outcome, counted.
#[derive(Default)]
struct Tally {
    sent: u64,
    ok: u64,
    refused: u64,
    refused_without_message: u64,
    by_status: BTreeMap<u16, u64>,
    lost: u64,
    lost_reasons: BTreeMap<String, u64>,
    outcomes: u64,
    other_status_messages: BTreeMap<String, u64>,
}

impl Tally {
    fn record(&mut self, result: &Result<omnifuse_client::Response, ClientError>) {
        self.outcomes += 1;
        match result {
            Ok(_) => {
                self.ok += 1;
                *self.by_status.entry(200).or_default() += 1;
            }
            Err(ClientError::Http { status, message, .. }) => {
                *self.by_status.entry(*status).or_default() += 1;
                if matches!(status, 429 | 503) {
                    self.refused += 1;
                    if message.trim().is_empty() {
                        self.refused_without_message += 1;
                    }
                } else if self.other_status_messages.len() < 5 {
                    *self.other_status_messages.entry(format!("{status} {message}")).or_default() += 1;
                }
            }
            Err(e) => {
                self.lost += 1;
                if self.lost_reasons.len() < 5 {
                    *self.lost_reasons.entry(e.to_string()).or_default() += 1;
                }
            }
        }
    }

    fn answered(&self) -> u64 {
        self.by_status.values().sum()
    }

    fn other_status(&self) -> u64 {
        self.answered() - self.ok - self.refused
    }
}

fn lock(t: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// The request numbered `n`: a distinct text, so no two requests are alike.
fn request(n: u64) -> [Input; 1] {
    [Input::text(format!("overload check request {n}: a calm sea at dawn"))]
}

/// Run the check; exit 0 when the bar is met, 1 when not.
pub fn run(client: &UnifiedModelClient, args: &Args) -> Result<ExitCode, ClientError> {
    if args.threads == 0 || args.factor <= 0.0 || args.seconds <= 0.0 || args.peak_seconds <= 0.0 {
        return Err(ClientError::Input {
            what: "overload settings".into(),
            reason: format!(
                "threads {}, factor {}, seconds {}, peak seconds {}: expected each above 0",
                args.threads, args.factor, args.seconds, args.peak_seconds
            ),
        });
    }
    if !client.ready()? {
        return Err(ClientError::Input {
            what: client.endpoint().to_string(),
            reason: "the server is not ready (/v2/health/ready is 503): expected a warmed-up server".into(),
        });
    }
    let params = Parameters::default().task(args.task.clone());
    let sampler = args.server_pid.map(|pid| Sampler::start(pid, Duration::from_millis(200), "peak"));

    let (peak_qps, peak_errors) = peak(client, &params, args.threads, Duration::from_secs_f64(args.peak_seconds));
    if peak_qps <= 0.0 {
        return Err(ClientError::Input {
            what: "the peak phase".into(),
            reason: format!("no request was answered 200 ({peak_errors} failed): expected a serving server"),
        });
    }
    if let Some(s) = &sampler {
        s.set_phase("overload");
    }
    let offered = peak_qps * args.factor;
    let before = infer_answers(client)?;
    let (tally, not_sent, elapsed) = overload(client, &params, offered, Duration::from_secs_f64(args.seconds), args);
    let server_answered = infer_answers(client)? - before;
    if let Some(s) = &sampler {
        s.set_phase("after");
    }
    let ready_after = client.ready()?;
    let mut after_ok = 0;
    for n in 0..args.after_requests as u64 {
        if client.infer(&request(u64::MAX - n), &params).is_ok() {
            after_ok += 1;
        }
    }
    let samples = sampler.map(Sampler::finish).unwrap_or_default();

    let t = tally;
    let duplicated = server_answered.saturating_sub(t.answered());
    let unmatched = t.answered().saturating_sub(server_answered);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let rss = |phase| rss::range(&samples, phase).map(|(lo, hi)| json!({"min_mib": mib(lo), "max_mib": mib(hi)}));
    // Bounded: the overload's peak RSS within twice the closed loop's, plus 64 MiB of slack.
    let rss_bounded = match (rss::range(&samples, Some("peak")), rss::range(&samples, Some("overload"))) {
        (Some((_, p)), Some((_, o))) => Some(o <= 2 * p + (64 << 20)),
        _ => None,
    };
    let pass = t.lost == 0
        && duplicated == 0
        && unmatched == 0
        && t.outcomes == t.sent
        && t.other_status() == 0
        && t.refused_without_message == 0
        && not_sent == 0
        && ready_after
        && after_ok == args.after_requests
        && rss_bounded != Some(false);
    let report = json!({
        "endpoint": client.endpoint(),
        "peak": {"threads": args.threads, "seconds": args.peak_seconds, "qps": peak_qps, "errors": peak_errors},
        "overload": {
            "factor": args.factor, "seconds": elapsed, "offered_qps": offered,
            "sent_qps": t.sent as f64 / elapsed.max(1e-9),
            "sent": t.sent, "not_sent": not_sent, "answered": t.answered(), "ok": t.ok, "refused": t.refused,
            "refused_without_message": t.refused_without_message, "other_status": t.other_status(),
            "by_status": t.by_status.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "other_status_messages": t.other_status_messages,
            "lost": t.lost, "lost_reasons": t.lost_reasons,
            "server_answered": server_answered, "duplicated": duplicated, "unmatched": unmatched,
        },
        "rss": {"pid": args.server_pid, "samples": samples.len(), "peak": rss(Some("peak")),
                "overload": rss(Some("overload")), "after": rss(Some("after")), "all": rss(None),
                "bounded": rss_bounded},
        "after": {"ready": ready_after, "requests": args.after_requests, "ok": after_ok},
        "pass": pass,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_else(|_| report.to_string()));
    } else {
        print!("{}", summary(&report));
    }
    Ok(if pass { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Closed loop: `threads` threads each send their next request when the last is answered,
/// for `time`; the rate of 200 answers, and the failures.
fn peak(client: &UnifiedModelClient, params: &Parameters, threads: usize, time: Duration) -> (f64, u64) {
    let start = Instant::now();
    let seq = Arc::new(AtomicUsize::new(0));
    let results: Vec<(u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let seq = seq.clone();
                s.spawn(move || {
                    let (mut ok, mut failed) = (0u64, 0u64);
                    while start.elapsed() < time {
                        let n = seq.fetch_add(1, Ordering::Relaxed) as u64;
                        match client.infer(&request(n), params) {
                            Ok(_) => ok += 1,
                            Err(_) => failed += 1,
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or((0, 1))).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let (ok, failed) = results.iter().fold((0, 0), |(a, b), (o, f)| (a + o, b + f));
    (ok as f64 / elapsed, failed)
}

/// Open loop: request `i` is due at `i / qps` seconds, sent on a thread of its own whether
/// or not earlier ones were answered. Returns the tally, the requests not sent (in-flight
/// limit or no thread), and the seconds it offered load.
fn overload(
    client: &UnifiedModelClient,
    params: &Parameters,
    qps: f64,
    time: Duration,
    args: &Args,
) -> (Tally, u64, f64) {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    let mut not_sent = 0u64;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < time {
        let due = start + Duration::from_secs_f64(n as f64 / qps);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        n += 1;
        if in_flight.load(Ordering::Acquire) >= args.max_in_flight {
            not_sent += 1;
            continue;
        }
        let (c, p, t, f) = (client.clone(), params.clone(), tally.clone(), in_flight.clone());
        f.fetch_add(1, Ordering::AcqRel);
        lock(&t).sent += 1;
        let spawned = std::thread::Builder::new().stack_size(256 << 10).spawn(move || {
            let result = c.infer(&request(1_000_000 + n), &p);
            lock(&t).record(&result);
            f.fetch_sub(1, Ordering::AcqRel);
        });
        match spawned {
            Ok(h) => handles.push(h),
            Err(_) => {
                lock(&tally).sent -= 1;
                in_flight.fetch_sub(1, Ordering::AcqRel);
                not_sent += 1;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    for h in handles {
        let _ = h.join();
    }
    let tally = std::mem::take(&mut *lock(&tally));
    (tally, not_sent, elapsed)
}

/// The server's count of `/v1/infer` answers, every status, from `/metrics`.
fn infer_answers(client: &UnifiedModelClient) -> Result<u64, ClientError> {
    let text = client.metrics()?;
    let prefix = "omnifuse_http_requests_total{method=\"POST\",route=\"/v1/infer\",";
    Ok(text
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum())
}

/// The report for people.
fn summary(r: &Value) -> String {
    let o = &r["overload"];
    let rss = |p: &str| match (&r["rss"][p]["min_mib"], &r["rss"][p]["max_mib"]) {
        (Value::Number(lo), Value::Number(hi)) => {
            format!("{:.1}–{:.1} MiB", lo.as_f64().unwrap_or(0.0), hi.as_f64().unwrap_or(0.0))
        }
        _ => "not sampled".into(),
    };
    format!(
        "peak (closed loop, {} threads, {} s): {:.1} requests/s\n\
         overload: offered {:.1}/s ({}× peak) for {:.1} s: sent {} ({:.1}/s), not sent {}\n\
         \x20 answered {} = 200: {}, refused (429/503): {}, other status: {}; lost {}; \
         server counted {} (duplicated {}, unmatched {}); refusals without a message {}\n\
         \x20 statuses {}\n\
         server RSS: peak phase {}, overload {}, after {}; bounded: {}\n\
         after: ready {}, {}/{} requests answered 200\n\
         {}\n",
        r["peak"]["threads"],
        r["peak"]["seconds"],
        r["peak"]["qps"].as_f64().unwrap_or(0.0),
        o["offered_qps"].as_f64().unwrap_or(0.0),
        o["factor"],
        o["seconds"].as_f64().unwrap_or(0.0),
        o["sent"],
        o["sent_qps"].as_f64().unwrap_or(0.0),
        o["not_sent"],
        o["answered"],
        o["ok"],
        o["refused"],
        o["other_status"],
        o["lost"],
        o["server_answered"],
        o["duplicated"],
        o["unmatched"],
        o["refused_without_message"],
        o["by_status"],
        rss("peak"),
        rss("overload"),
        rss("after"),
        r["rss"]["bounded"],
        r["after"]["ready"],
        r["after"]["ok"],
        r["after"]["requests"],
        if r["pass"] == true { "PASS: every request got exactly one answer" } else { "FAIL" },
    )
}
