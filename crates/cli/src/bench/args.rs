//! The flags of `omnifuse bench`, and their checks.

use std::path::PathBuf;

use omnifuse_model::{Error, Result};

use crate::run::ModelArgs;

/// Arguments of `omnifuse bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Scenario (MLPerf LoadGen's): single-stream (one query at a time; judged on P90),
    /// multi-stream (--samples-per-query requests per query, the next when all are answered;
    /// P99), server (Poisson arrivals at --qps, latency from the scheduled send time; valid when
    /// P99 <= --latency-bound) or offline (all requests at once; samples/s, batching off and on
    /// in alternating rounds).
    #[arg(long, default_value = "offline", value_parser = ["single-stream", "multi-stream", "server", "offline"])]
    pub scenario: String,
    /// Numeric precision of the model: fp32, fp16 or int8. With fp16/int8, --accuracy-samples
    /// requests of the workload also run at FP32 and the accuracy loss is reported.
    #[arg(long, default_value = "fp32")]
    pub precision: String,
    /// Modality mix: weights per request kind, e.g. text=0.4,image=0.3,audio=0.2,video=0.1, or
    /// combinations such as text+image=0.5 (sizes: text 8–64 words, images 160–320 px a side,
    /// audio 1–3 s at 16 kHz, video 4–12 frames of 160×120).
    #[arg(long, default_value = "text=0.4,image=0.3,audio=0.3", conflicts_with = "inputs")]
    pub mix: String,
    /// A directory of real inputs instead of --mix: one request per file (.txt text, PNG/JPEG,
    /// WAV, Y4M — detected by content; other files are an error).
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Distinct requests generated from --mix (offline runs all of them each round; the other
    /// scenarios draw queries from them in a seeded order).
    #[arg(long, default_value_t = 64)]
    pub queries: usize,
    /// Dynamic batching: on (the batcher groups up to --batch requests, waiting at most
    /// --max-delay-ms) or off (one request per batch). Offline always measures both.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub batching: String,
    /// Same-modality grouping with batching on: a batch holds requests of one modality mix
    /// (text-only with text-only, image+audio with image+audio); a request that has waited
    /// --max-delay-ms still leaves in the next batch whatever its mix. Offline: the batched
    /// pass cuts each mix's requests into batches, the largest mix first.
    #[arg(long, default_value = "off", value_parser = ["on", "off"])]
    pub grouping: String,
    /// Most requests per batch with batching on.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Longest a request waits for its batch to fill, in milliseconds (batching on).
    #[arg(long, default_value_t = 5.0)]
    pub max_delay_ms: f64,
    /// Offline: rounds of each batching mode (medians are reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Single-stream, multi-stream, server: run at least this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Fewest queries for a valid run (all scenarios; server runs also schedule at least
    /// this many).
    #[arg(long, default_value_t = 100)]
    pub min_queries: usize,
    /// Benchmark a running `omnifuse serve` at this address (http://HOST:PORT) instead of the
    /// in-process model: latency is measured over the wire; the server's own stage times are
    /// reported. The harness's batcher groups queued queries and sends each group at once,
    /// one request per connection, and the server batches them again. The model flags and
    /// --precision do not apply (the server's are used).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// With --target: a file holding the server's API key (as `omnifuse client` reads it; else
    /// the OMNIFUSE_API_KEY environment variable; neither: no key is sent).
    #[arg(long, value_name = "FILE", requires = "target")]
    pub api_key_file: Option<PathBuf>,
    /// Keep encoder outputs in a feature cache of this many MiB (0: off): a repeated input
    /// skips its encoder. The report gives the hit rate. In-process model only.
    #[arg(long, default_value_t = 0, value_name = "MIB", conflicts_with = "target")]
    pub feature_cache_mb: usize,
    /// Seed of the workload, the arrival schedule and the accuracy sample.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Server: the target queries per second (with --find-peak: where the search starts).
    #[arg(long, default_value_t = 10.0)]
    pub qps: f64,
    /// Server: the P99 latency bound in milliseconds.
    #[arg(long, default_value_t = 200.0)]
    pub latency_bound: f64,
    /// Multi-stream: requests per query.
    #[arg(long, default_value_t = 8)]
    pub samples_per_query: usize,
    /// Server: search for the highest QPS whose P99 meets --latency-bound (short probe runs),
    /// then run --duration at that peak (the report) and at 50% of it (reported beside it).
    #[arg(long)]
    pub find_peak: bool,
    /// --find-peak: seconds per probe run.
    #[arg(long, default_value_t = 5.0)]
    pub probe_duration: f64,
    /// --find-peak: stop when the bracket is within this fraction of its lower end.
    #[arg(long, default_value_t = 0.05)]
    pub peak_tolerance: f64,
    /// --find-peak: most probe runs.
    #[arg(long, default_value_t = 12)]
    pub peak_probes: usize,
    /// With --precision fp16/int8: requests (a seeded sample of the workload) also run at FP32
    /// to report the accuracy loss; 0 skips it.
    #[arg(long, default_value_t = 32)]
    pub accuracy_samples: usize,
    /// Heads to run (as `run --task`); all heads by default.
    #[arg(long = "task")]
    pub tasks: Vec<String>,
    /// Most generated tokens per request for generation heads.
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Write the JSON report to FILE (`--json` alone or `--json -`: print it instead of the
    /// table).
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report (summary, validity, latency histogram and CDF,
    /// latency over time, batch sizes) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Print two JSON reports side by side with ratios B/A, and run nothing.
    #[arg(long, num_args = 2, value_names = ["A.json", "B.json"])]
    pub compare: Option<Vec<PathBuf>>,
}

impl Args {
    /// Whether batching is on.
    pub fn batching_on(&self) -> bool {
        self.batching == "on"
    }

    /// Whether same-modality grouping is on (it applies only with batching on).
    pub fn grouping_on(&self) -> bool {
        self.grouping == "on"
    }

    /// Whether the JSON goes to standard output (then no table is printed).
    pub fn json_to_stdout(&self) -> bool {
        self.json.as_deref().is_some_and(|p| p.as_os_str() == "-")
    }

    /// Check the numbers; the error names the flag, the value seen and what is expected.
    pub fn check(&self) -> Result<()> {
        let bad =
            |flag: &str, seen: String, want: &str| Err(Error::Request(format!("--{flag} {seen}: expected {want}")));
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if self.queries == 0 {
            return bad("queries", "0".into(), "at least 1");
        }
        if self.batch == 0 {
            return bad("batch", "0".into(), "at least 1");
        }
        if self.rounds == 0 {
            return bad("rounds", "0".into(), "at least 1");
        }
        if self.samples_per_query == 0 {
            return bad("samples-per-query", "0".into(), "at least 1");
        }
        if !(self.max_delay_ms.is_finite() && self.max_delay_ms >= 0.0) {
            return bad("max-delay-ms", self.max_delay_ms.to_string(), "a non-negative number of milliseconds");
        }
        if !(self.duration.is_finite() && self.duration >= 0.0) {
            return bad("duration", self.duration.to_string(), "a non-negative number of seconds");
        }
        if !positive(self.qps) {
            return bad("qps", self.qps.to_string(), "a positive number of queries per second");
        }
        if !positive(self.latency_bound) {
            return bad("latency-bound", self.latency_bound.to_string(), "a positive number of milliseconds");
        }
        if !positive(self.probe_duration) {
            return bad("probe-duration", self.probe_duration.to_string(), "a positive number of seconds");
        }
        if !positive(self.peak_tolerance) {
            return bad("peak-tolerance", self.peak_tolerance.to_string(), "a positive fraction such as 0.05");
        }
        if self.find_peak && self.scenario != "server" {
            return Err(Error::Request(format!(
                "--find-peak searches server QPS, but --scenario is {}: use --scenario server",
                self.scenario
            )));
        }
        Ok(())
    }
}
