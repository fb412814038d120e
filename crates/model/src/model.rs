//! The model as a whole: loads a model directory (or a built-in preset), uploads its weights
//! to the backend once, and answers requests — detect and preprocess every input, encode each
//! with its modality's encoder (layer 1), fuse all tokens (layer 2), run the asked heads on
//! the one fused sequence (layer 3) — timing each layer. In a batch every layer runs over all
//! requests together: encoders by modality, fusion over packed sequences, and each head once
//! (one GEMM over a row per request; generation decodes the batch in lockstep).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use omnifuse_core::graph::ValueId;
use omnifuse_core::{Backend, Tensor};

use crate::builder::{Builder, Source, to_f32};
use crate::cache::{CacheStats, FeatureCache, Key};
use crate::calibrate::Observer;
use crate::config::{Config, HeadConfig, HeadKind};
use crate::encoders;
use crate::error::{Error, Result};
use crate::fusion::{self, Encoded};
use crate::generate::{self, DecoderShape, Sampling};
use crate::heads;
use crate::input::{Modality, Prepared, Preprocessor, RawInput};
use crate::output::{HeadResult, InputSummary, Response, Timing};
use crate::precision::Precision;
use crate::request::Parameters;
use crate::weights::Weights;

/// File names inside a model directory.
pub const CONFIG_FILE: &str = "config.toml";
/// Weights file of a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Optional tokenizer of a model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// A loaded model on one backend.
pub struct Model {
    config: Config,
    backend: Arc<dyn Backend>,
    weights: HashMap<String, Tensor>,
    parameters: usize,
    pre: Preprocessor,
    precision: Precision,
    /// Encoder outputs kept between requests, when enabled.
    cache: Option<FeatureCache>,
    /// Static per-tensor input steps of INT8 `Linear` weights (empty: per-token dynamic).
    steps: HashMap<String, f32>,
    /// Records every `Linear` input while set (calibration).
    observer: Option<Arc<Observer>>,
}

/// A request between layer 1 and layer 3.
struct Staged<'m> {
    heads: Vec<&'m HeadConfig>,
    prepared: Vec<Prepared>,
    encoded: Vec<Encoded>,
    timing: Timing,
    z: Option<Tensor>,
    /// Head results computed for the whole batch at once (generation), with their time.
    answered: BTreeMap<String, (Result<HeadResult>, f64)>,
}

impl Model {
    /// A model from a config and its weights; `tokenizer` is an optional `tokenizer.json`.
    pub fn new(
        config: Config,
        weights: &Weights,
        backend: Arc<dyn Backend>,
        tokenizer: Option<&Path>,
    ) -> Result<Model> {
        config.validate()?;
        let mut device = HashMap::new();
        for (name, t) in weights.for_compute(&crate::weights::spec(&config))? {
            device.insert(name, backend.to_device_constant(&t)?);
        }
        let pre = Preprocessor::new(&config, tokenizer)?;
        let precision = if weights.iter().any(|(_, t)| t.desc.dtype == omnifuse_core::DType::I8) {
            Precision::Int8
        } else {
            Precision::Fp32
        };
        Ok(Model {
            parameters: weights.parameters(),
            config,
            backend,
            weights: device,
            pre,
            precision,
            cache: None,
            steps: weights.input_steps(),
            observer: None,
        })
    }

    /// A model in `precision`: INT8 quantises the f32 `Linear` weights per output channel
    /// as they load (except the config's `[quant] keep_fp32` layers); weights already INT8 (a
    /// directory `omnifuse quantize` wrote) run as they are.
    pub fn with_precision(
        config: Config,
        mut weights: Weights,
        backend: Arc<dyn Backend>,
        tokenizer: Option<&Path>,
        precision: Precision,
    ) -> Result<Model> {
        let quantised = weights.iter().any(|(_, t)| t.desc.dtype == omnifuse_core::DType::I8);
        match precision {
            Precision::Int8 => {
                weights.quantize_int8(&crate::weights::spec(&config), &config.quant.keep_fp32)?;
            }
            Precision::Fp16 => {
                if quantised {
                    return Err(Error::Config(
                        "this model's weights are INT8: run it with --precision int8, or convert the fp32 model".into(),
                    ));
                }
                let mut model = Model::new(config, &weights, backend, tokenizer)?;
                model.store_half()?;
                return Ok(model);
            }
            Precision::Fp32 if quantised => {
                return Err(Error::Config(
                    "this model's weights are INT8 (written by `omnifuse quantize`): run it with --precision int8, or \
                     use the fp32 model it was made from"
                        .into(),
                ));
            }
            Precision::Fp32 => {}
        }
        let mut model = Model::new(config, &weights, backend, tokenizer)?;
        model.precision = precision;
        Ok(model)
    }

    /// A built-in preset (`omni-small`, `omni-base`) with its seeded weights.
    pub fn preset(name: &str, backend: Arc<dyn Backend>) -> Result<Model> {
        Model::preset_in(name, backend, Precision::Fp32)
    }

    /// A built-in preset in `precision`.
    pub fn preset_in(name: &str, backend: Arc<dyn Backend>, precision: Precision) -> Result<Model> {
        let config = Config::preset(name)?;
        let weights = Weights::generate(&config)?;
        Model::with_precision(config, weights, backend, None, precision)
    }

    /// A model directory: `config.toml`, `model.safetensors`, optional `tokenizer.json`; in
    /// f32, or INT8 when the directory holds INT8 weights.
    pub fn load(dir: &Path, backend: Arc<dyn Backend>) -> Result<Model> {
        let (config, weights, tok) = Model::read_dir(dir)?;
        let quantised = weights.iter().any(|(_, t)| t.desc.dtype == omnifuse_core::DType::I8);
        let precision = if quantised { Precision::Int8 } else { Precision::Fp32 };
        Model::with_precision(config, weights, backend, tok.as_deref(), precision)
    }

    /// A model directory in `precision`.
    pub fn load_in(dir: &Path, backend: Arc<dyn Backend>, precision: Precision) -> Result<Model> {
        let (config, weights, tok) = Model::read_dir(dir)?;
        Model::with_precision(config, weights, backend, tok.as_deref(), precision)
    }

    /// Read a model directory: its config, weights and tokenizer path (when present).
    pub fn read_dir(dir: &Path) -> Result<(Config, Weights, Option<std::path::PathBuf>)> {
        let cfg_path = dir.join(CONFIG_FILE);
        if !cfg_path.exists() && dir.join("modules.json").exists() {
            return Err(Error::Config(format!(
                "{0} is a sentence-transformers directory, not an omni-modal model (no {CONFIG_FILE}): embed with \
                 `omnifuse embed --model {0}`, or make it the text encoder of a model with \
                 `omnifuse import --from sentence-transformers {0} --out DIR --omni omni-small`",
                dir.display()
            )));
        }
        let text =
            std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(format!("reading {}", cfg_path.display()), e))?;
        let config = Config::from_toml(&text).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", cfg_path.display())),
            other => other,
        })?;
        let weights = Weights::load(&dir.join(WEIGHTS_FILE), &config)?;
        let tok = dir.join(TOKENIZER_FILE);
        Ok((config, weights, tok.exists().then_some(tok)))
    }

    /// Write `config` and `weights` as a model directory.
    pub fn save(dir: &Path, config: &Config, weights: &Weights) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let cfg_path = dir.join(CONFIG_FILE);
        std::fs::write(&cfg_path, config.to_toml()?)
            .map_err(|e| Error::io(format!("writing {}", cfg_path.display()), e))?;
        weights.save(&dir.join(WEIGHTS_FILE))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Store every float weight in f16 (except the attention pair bias, which the attention op
    /// takes in f32), so activations follow in f16.
    fn store_half(&mut self) -> Result<()> {
        for (name, t) in self.weights.iter_mut() {
            if t.desc.dtype != omnifuse_core::DType::F32 || name.ends_with("pair_bias") {
                continue;
            }
            let host = self.backend.to_host(t)?;
            *t = self.backend.to_device_constant(&crate::builder::to_f16(&host))?;
        }
        self.precision = Precision::Fp16;
        Ok(())
    }

    /// Record every `Linear` input — encoders, fusion transformer, every head, each decoder
    /// step of a generation head — into `observer` from now on (`None`: stop).
    pub fn set_observer(&mut self, observer: Option<Arc<Observer>>) {
        self.observer = observer;
    }

    /// How many `Linear` layers quantise their input with a static calibrated step.
    pub fn static_layers(&self) -> usize {
        self.steps.len()
    }

    /// What this model's graphs are built over: weights, static steps, observer.
    fn source(&self) -> Source<'_> {
        Source { weights: &self.weights, steps: &self.steps, observer: self.observer.as_deref() }
    }

    /// A graph builder over this model's weights, with its static steps and observer.
    fn builder(&self) -> Builder<'_> {
        self.source().builder(self.config.model.eps)
    }

    /// The precision the model runs in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Number of parameters.
    pub fn parameters(&self) -> usize {
        self.parameters
    }

    /// The backend's name.
    pub fn backend_name(&self) -> String {
        self.backend.name().to_string()
    }

    /// Bytes of device memory the backend's live buffers hold now, where it counts them.
    pub fn device_memory_in_use(&self) -> Option<u64> {
        self.backend.memory_in_use()
    }

    /// The heads a list of tasks asks for (all heads when empty). A task is a head's name, a
    /// head kind (`classification`, `retrieval`, `generation`) or a common task name
    /// (`sentiment`, `embedding`, `captioning`, `visual_question_answering`, …).
    pub fn select_heads(&self, tasks: &[String]) -> Result<Vec<&HeadConfig>> {
        if tasks.is_empty() {
            return Ok(self.config.heads.iter().collect());
        }
        let mut picked: Vec<&HeadConfig> = Vec::new();
        for task in tasks {
            let kind = match task.as_str() {
                "classification" | "classify" | "sentiment" | "sentiment_analysis" => Some("classification"),
                "retrieval" | "embedding" | "embed" | "search" => Some("retrieval"),
                "generation"
                | "generate"
                | "caption"
                | "captioning"
                | "visual_question_answering"
                | "vqa"
                | "question_answering"
                | "qa" => Some("generation"),
                _ => None,
            };
            let found: Vec<&HeadConfig> = match self.config.head(task) {
                Some(h) => vec![h],
                None => self.config.heads.iter().filter(|h| Some(h.kind.name()) == kind).collect(),
            };
            if found.is_empty() {
                let names: Vec<&str> = self.config.heads.iter().map(|h| h.name.as_str()).collect();
                return Err(Error::Request(format!(
                    "unknown task '{task}': this model's heads are {} (or ask by kind: classification, retrieval, \
                     generation)",
                    names.join(", ")
                )));
            }
            for h in found {
                if !picked.iter().any(|p| p.name == h.name) {
                    picked.push(h);
                }
            }
        }
        Ok(picked)
    }

    /// Keep encoder outputs between requests in a feature cache of at most `bytes` (LRU by
    /// bytes; 0 turns it off). A repeated input — the same image, clip or text — then skips
    /// its encoder; the results are the same values.
    pub fn set_feature_cache(&mut self, bytes: usize) {
        self.cache = (bytes > 0).then(|| FeatureCache::new(bytes));
    }

    /// The feature cache's counters, when it is on.
    pub fn feature_cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(FeatureCache::stats)
    }

    /// Answer one request.
    pub fn run(&self, inputs: &[RawInput], params: &Parameters) -> Result<Response> {
        self.run_batch(&[(inputs, params)])
            .pop()
            .unwrap_or_else(|| Err(Error::Request("internal: a batch of one gave no answer".into())))
    }

    /// Answer several requests together: each is checked and preprocessed on its own (a bad
    /// request fails alone), encoded by modality across the batch, then all the good ones are
    /// fused in one pass — one packed sequence per request, so none sees another — and each
    /// asked head runs once over the requests asking it (classification and retrieval: one
    /// GEMM over a pooled row per request; generation: a lockstep decode). Fusion and head
    /// times in each response are the whole batch's.
    pub fn run_batch(&self, requests: &[(&[RawInput], &Parameters)]) -> Vec<Result<Response>> {
        let start = Instant::now();
        let mut staged: Vec<Result<Staged<'_>>> =
            requests.iter().map(|(inputs, params)| self.prepare(inputs, params)).collect();
        self.encode_staged(&mut staged);
        let ok: Vec<usize> = (0..staged.len()).filter(|&i| staged[i].is_ok()).collect();
        if !ok.is_empty() {
            let t0 = Instant::now();
            let groups: Vec<&[Encoded]> =
                ok.iter().filter_map(|&i| staged[i].as_ref().ok().map(|s| s.encoded.as_slice())).collect();
            match self.fuse_requests(&groups) {
                Ok(zs) => {
                    let fuse_ms = ms(t0);
                    for (&i, z) in ok.iter().zip(zs) {
                        if let Ok(s) = &mut staged[i] {
                            s.timing.fuse = fuse_ms;
                            s.z = Some(z);
                        }
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for &i in &ok {
                        staged[i] = Err(Error::Request(format!("fusion failed: {msg}")));
                    }
                }
            }
        }
        self.generate_batched(&mut staged, requests);
        self.heads_batched(&mut staged);
        staged.into_iter().zip(requests).map(|(s, (_, params))| s.and_then(|s| self.answer(s, params, start))).collect()
    }

    /// A generation head's decoder shape and default token budget; `None` for other heads.
    fn decoder(&self, h: &HeadConfig) -> Option<(DecoderShape, usize)> {
        let HeadKind::Generation { layers, heads, max_tokens, max_positions, .. } = &h.kind else {
            return None;
        };
        let shape = DecoderShape {
            width: self.config.model.width,
            layers: *layers,
            heads: *heads,
            max_positions: *max_positions,
            eps: self.config.model.eps,
        };
        Some((shape, *max_tokens))
    }

    /// Layer 3's generation heads for every fused request of a batch at once: the requests
    /// asking a generation head decode together, one row each per step. A request whose
    /// sampling is refused (too many tokens) fails alone; the others still batch.
    fn generate_batched(&self, staged: &mut [Result<Staged<'_>>], requests: &[(&[RawInput], &Parameters)]) {
        for h in &self.config.heads {
            let Some((shape, max_tokens)) = self.decoder(h) else { continue };
            let mut members: Vec<(usize, Tensor, Sampling)> = Vec::new();
            for (i, s) in staged.iter_mut().enumerate() {
                let Ok(s) = s else { continue };
                let (Some(z), true) = (&s.z, s.heads.iter().any(|x| x.name == h.name)) else { continue };
                let sampling = sampling(requests[i].1, max_tokens);
                if let Err(e) = shape.check(&sampling) {
                    s.answered.insert(h.name.clone(), (Err(e), 0.0));
                    continue;
                }
                members.push((i, z.clone(), sampling));
            }
            if members.is_empty() {
                continue;
            }
            let t0 = Instant::now();
            let jobs: Vec<(&Tensor, Sampling)> = members.iter().map(|(_, z, s)| (z, *s)).collect();
            let out = generate::generate_batch(&self.backend, self.source(), &h.name, shape, &jobs);
            let took = ms(t0);
            match out {
                Ok(gs) => {
                    for ((i, _, _), g) in members.iter().zip(gs) {
                        if let Ok(s) = &mut staged[*i] {
                            s.answered.insert(h.name.clone(), (Ok(generated(g)), took));
                        }
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for (i, _, _) in &members {
                        if let Ok(s) = &mut staged[*i] {
                            let e = Error::Request(format!("generation failed: {msg}"));
                            s.answered.insert(h.name.clone(), (Err(e), took));
                        }
                    }
                }
            }
        }
    }

    /// Layer 3's classification and retrieval heads for every fused request of a batch at
    /// once: per head, the pooled rows of all requests asking it go through one GEMM (one row
    /// per request, or per request and input for retrieval), and each request is charged the
    /// pass's time. If the pass fails, those requests are left to the one-request path, so
    /// only a request at fault fails.
    fn heads_batched(&self, staged: &mut [Result<Staged<'_>>]) {
        for h in &self.config.heads {
            if !matches!(h.kind, HeadKind::Classification { .. } | HeadKind::Retrieval { .. }) {
                continue;
            }
            let members: Vec<usize> = (0..staged.len())
                .filter(|&i| {
                    staged[i].as_ref().is_ok_and(|s| s.z.is_some() && s.heads.iter().any(|x| x.name == h.name))
                })
                .collect();
            if members.is_empty() {
                continue;
            }
            let t0 = Instant::now();
            let fused: Vec<(Tensor, Vec<(usize, usize)>)> = members
                .iter()
                .filter_map(|&i| staged[i].as_ref().ok())
                .filter_map(|s| s.z.clone().map(|z| (z, spans(&s.encoded))))
                .collect();
            let Ok(results) = self.heads_for(h, &fused) else { continue };
            let took = ms(t0);
            if results.len() != members.len() {
                continue;
            }
            for (&i, r) in members.iter().zip(results) {
                if let Ok(s) = &mut staged[i] {
                    s.answered.insert(h.name.clone(), (Ok(r), took));
                }
            }
        }
    }

    /// A classification or retrieval head over several fused requests `(z, spans)` in one
    /// graph: one answer per request, in order.
    fn heads_for(&self, h: &HeadConfig, fused: &[(Tensor, Vec<(usize, usize)>)]) -> Result<Vec<HeadResult>> {
        let mut b = self.builder();
        let zs: Vec<ValueId> = fused.iter().map(|(z, _)| b.device(z.clone())).collect();
        match &h.kind {
            HeadKind::Classification { labels, pool } => {
                let probs = heads::classification_batch(&mut b, &zs, &h.name, *pool)?;
                let out = b.run(&self.backend, &[probs])?;
                let all = to_f32(&self.backend, &out[0])?;
                let width = all.len() / fused.len().max(1);
                if width == 0 || width * fused.len() != all.len() {
                    return Err(Error::Request(format!(
                        "internal: classification gave {} values for {} requests",
                        all.len(),
                        fused.len()
                    )));
                }
                Ok(all
                    .chunks(width)
                    .map(|p| {
                        let probabilities = p.to_vec();
                        let best = probabilities
                            .iter()
                            .enumerate()
                            .fold(0, |best, (i, &x)| if x > probabilities[best] { i } else { best });
                        let label = labels.get(best).cloned().unwrap_or_default();
                        HeadResult::Classification { label, labels: labels.clone(), probabilities }
                    })
                    .collect())
            }
            HeadKind::Retrieval { .. } => {
                let requests: Vec<(ValueId, &[(usize, usize)])> =
                    zs.iter().zip(fused).map(|(&z, (_, sp))| (z, sp.as_slice())).collect();
                let emb = heads::retrieval_batch(&mut b, &requests, &h.name)?;
                let out = b.run(&self.backend, &[emb])?;
                let mut rows = heads::retrieval_rows(&self.backend, &out[0])?.into_iter();
                let mut answers = Vec::with_capacity(fused.len());
                for (_, sp) in fused {
                    let mut mine: Vec<Vec<f32>> = rows.by_ref().take(1 + sp.len()).collect();
                    if mine.len() != 1 + sp.len() {
                        return Err(Error::Request("internal: retrieval gave too few rows".into()));
                    }
                    let fused_row = mine.remove(0);
                    answers.push(HeadResult::Retrieval { fused: fused_row, inputs: mine, matches: None });
                }
                Ok(answers)
            }
            HeadKind::Generation { .. } => Err(Error::Request("internal: generation is not a one-pass head".into())),
        }
    }

    /// One request's intermediate results by stage — each input's encoder output
    /// (`encoder.<modality>`) and the fused sequence (`fusion`) — as f32 values, for
    /// comparing precisions stage by stage (where quantisation error enters).
    pub fn trace(&self, inputs: &[RawInput]) -> Result<Vec<(String, Vec<f32>)>> {
        let s = self.stage(inputs, &Parameters::default())?;
        let mut out = Vec::with_capacity(s.encoded.len() + 1);
        for e in &s.encoded {
            out.push((format!("encoder.{}", e.modality.name()), to_f32(&self.backend, &e.tokens)?));
        }
        let z = self.fuse_requests(&[s.encoded.as_slice()])?;
        for t in &z {
            out.push(("fusion".to_string(), to_f32(&self.backend, t)?));
        }
        Ok(out)
    }

    /// Check, preprocess and encode one request.
    fn stage<'m>(&'m self, inputs: &[RawInput], params: &Parameters) -> Result<Staged<'m>> {
        let mut staged = [self.prepare(inputs, params)];
        self.encode_staged(&mut staged);
        let [s] = staged;
        s
    }

    /// Check and preprocess one request (layer 1 comes later, batched).
    fn prepare<'m>(&'m self, inputs: &[RawInput], params: &Parameters) -> Result<Staged<'m>> {
        let heads = self.select_heads(&params.tasks)?;
        if inputs.is_empty() {
            return Err(Error::Request("a request needs at least one input".into()));
        }
        if inputs.len() > self.config.limits.max_inputs {
            return Err(Error::Request(format!(
                "{} inputs, more than limits.max_inputs = {}",
                inputs.len(),
                self.config.limits.max_inputs
            )));
        }
        let mut timing = Timing::default();
        let t0 = Instant::now();
        let prepared = inputs.iter().enumerate().map(|(i, x)| self.pre.prepare(i, x)).collect::<Result<Vec<_>>>()?;
        timing.preprocess = ms(t0);
        Ok(Staged { heads, prepared, encoded: Vec::new(), timing, z: None, answered: BTreeMap::new() })
    }

    /// Layer 1 for every prepared request of a batch: per modality, all inputs of that
    /// modality in one pass (each request is charged the pass's time). If a pass fails, the
    /// requests are encoded one by one so that only the one at fault fails.
    fn encode_staged(&self, staged: &mut [Result<Staged<'_>>]) {
        let ok: Vec<usize> = (0..staged.len()).filter(|&i| staged[i].is_ok()).collect();
        let jobs: Vec<(usize, usize, &Prepared)> = ok
            .iter()
            .filter_map(|&i| staged[i].as_ref().ok().map(|s| (i, s)))
            .flat_map(|(i, s)| s.prepared.iter().enumerate().map(move |(j, p)| (i, j, p)))
            .collect();
        let mut results: Vec<Vec<Option<Encoded>>> = staged
            .iter()
            .map(|s| s.as_ref().map(|s| s.prepared.iter().map(|_| None).collect()).unwrap_or_default())
            .collect();
        let mut times: BTreeMap<&'static str, f64> = BTreeMap::new();
        let mut failed = false;
        let keys: Vec<Option<Key>> = jobs
            .iter()
            .map(|j| self.cache.as_ref().map(|_| Key::new(j.2, &self.config.model.name, self.precision.name())))
            .collect();
        let mut missing = vec![true; jobs.len()];
        if let Some(cache) = &self.cache {
            for (n, (j, key)) in jobs.iter().zip(&keys).enumerate() {
                if let Some(e) = key.as_ref().and_then(|k| cache.get(k)) {
                    results[j.0][j.1] = Some(e);
                    missing[n] = false;
                }
            }
        }
        for m in Modality::ALL {
            let group: Vec<usize> = (0..jobs.len()).filter(|&n| missing[n] && jobs[n].2.modality() == m).collect();
            if group.is_empty() {
                continue;
            }
            let t0 = Instant::now();
            let inputs: Vec<&Prepared> = group.iter().map(|&n| jobs[n].2).collect();
            match self.encode_many(&inputs) {
                Ok(enc) => {
                    for (&n, e) in group.iter().zip(enc) {
                        if let (Some(cache), Some(key)) = (&self.cache, &keys[n]) {
                            cache.put(key.clone(), e.clone());
                        }
                        let j = &jobs[n];
                        results[j.0][j.1] = Some(e);
                    }
                }
                Err(_) if ok.len() > 1 => {
                    // The rest of the pass is redone request by request below.
                    failed = true;
                    break;
                }
                Err(e) => {
                    staged[ok[0]] = Err(e);
                    return;
                }
            }
            times.insert(m.name(), ms(t0));
        }
        if failed {
            // Retry each request alone: a bad one fails, the rest still run.
            for &i in &ok {
                let mut one = [std::mem::replace(&mut staged[i], Err(Error::Request(String::new())))];
                self.encode_staged(&mut one);
                let [s] = one;
                staged[i] = s;
            }
            return;
        }
        for &i in &ok {
            if let Ok(s) = &mut staged[i] {
                s.encoded = std::mem::take(&mut results[i]).into_iter().flatten().collect();
                if s.encoded.len() != s.prepared.len() {
                    let msg = format!("internal: {} inputs gave {} encodings", s.prepared.len(), s.encoded.len());
                    staged[i] = Err(Error::Request(msg));
                    continue;
                }
                for p in &s.prepared {
                    let name = p.modality().name();
                    s.timing.encode.insert(name.to_string(), times.get(name).copied().unwrap_or(0.0));
                }
            }
        }
    }

    /// Layer 2 for a batch of requests: each request's fused rows `[T_r, D]` on the device.
    fn fuse_requests(&self, groups: &[&[Encoded]]) -> Result<Vec<Tensor>> {
        let mut b = self.builder();
        let z = fusion::fuse(&mut b, &self.config, groups)?;
        if groups.len() == 1 {
            return b.run(&self.backend, &[z]);
        }
        let mut outs = Vec::with_capacity(groups.len());
        let mut at = 0;
        for g in groups {
            let n: usize = g.iter().map(|e| e.len()).sum();
            outs.push(b.slice(z, 0, at, at + n)?);
            at += n;
        }
        b.run(&self.backend, &outs)
    }

    /// Layer 3 for one fused request.
    fn answer(&self, s: Staged<'_>, params: &Parameters, start: Instant) -> Result<Response> {
        let z = s.z.ok_or_else(|| Error::Request("internal: request was not fused".into()))?;
        let mut timing = s.timing;
        let spans = spans(&s.encoded);
        let mut results = BTreeMap::new();
        let mut answered = s.answered;
        for h in s.heads {
            let (r, took) = match answered.remove(&h.name) {
                Some((r, took)) => (r?, took),
                None => {
                    let t0 = Instant::now();
                    (self.head(h, &z, &spans, params)?, ms(t0))
                }
            };
            timing.heads.insert(h.name.clone(), took);
            results.insert(h.name.clone(), r);
        }
        timing.total = ms(start);
        Ok(Response {
            model: self.config.model.name.clone(),
            backend: self.backend_name(),
            inputs: s.encoded.iter().map(|e| InputSummary { modality: e.modality, tokens: e.len() }).collect(),
            heads: results,
            timing_ms: timing,
        })
    }

    /// Layer 1 for one prepared input: its tokens `[n, D]` on the device.
    pub fn encode(&self, p: &Prepared) -> Result<Encoded> {
        self.encode_many(&[p])?.pop().ok_or_else(|| Error::Request("internal: encoding gave no tokens".into()))
    }

    /// Layer 1 for several prepared inputs in one pass: each modality's inputs go through its
    /// encoder together, packed (see [`encoders`]); one token block per input, in order.
    pub fn encode_many(&self, inputs: &[&Prepared]) -> Result<Vec<Encoded>> {
        let cfg = &self.config;
        let mut b = self.builder();
        let mut blocks: Vec<(usize, ValueId, usize, usize)> = Vec::with_capacity(inputs.len());
        for m in Modality::ALL {
            let idx: Vec<usize> = (0..inputs.len()).filter(|&i| inputs[i].modality() == m).collect();
            if idx.is_empty() {
                continue;
            }
            let packed = match m {
                Modality::Text => {
                    let seqs: Vec<&[i32]> = idx.iter().filter_map(|&i| inputs[i].text_ids()).collect();
                    encoders::texts(&mut b, cfg, &seqs)?
                }
                Modality::Image => {
                    let px: Vec<&[f32]> = idx.iter().filter_map(|&i| inputs[i].image_pixels()).collect();
                    encoders::images(&mut b, cfg, &px)?
                }
                Modality::Audio => {
                    let au: Vec<(&[f32], usize)> = idx.iter().filter_map(|&i| inputs[i].audio_frames()).collect();
                    encoders::audios(&mut b, cfg, &au)?
                }
                Modality::Video => {
                    let vi: Vec<(&[f32], usize)> = idx.iter().filter_map(|&i| inputs[i].video_frames()).collect();
                    encoders::videos(&mut b, cfg, &vi)?
                }
            };
            if packed.lengths.len() != idx.len() {
                return Err(Error::Request(format!(
                    "internal: {} {} inputs gave {} encodings",
                    idx.len(),
                    m.name(),
                    packed.lengths.len()
                )));
            }
            let mut at = 0;
            for (&i, &n) in idx.iter().zip(&packed.lengths) {
                blocks.push((i, packed.rows, at, at + n));
                at += n;
            }
        }
        blocks.sort_by_key(|x| x.0);
        let mut outs = Vec::with_capacity(blocks.len());
        for &(_, rows, start, end) in &blocks {
            let total = b.dims(rows)?[0];
            outs.push(if start == 0 && end == total { rows } else { b.slice(rows, 0, start, end)? });
        }
        let tensors = b.run(&self.backend, &outs)?;
        Ok(blocks
            .iter()
            .zip(tensors)
            .map(|(&(i, ..), tokens)| Encoded { modality: inputs[i].modality(), tokens })
            .collect())
    }

    /// One head for one fused request (the batched pass's fallback, and generation alone).
    fn head(&self, h: &HeadConfig, z: &Tensor, spans: &[(usize, usize)], params: &Parameters) -> Result<HeadResult> {
        if let HeadKind::Generation { .. } = &h.kind {
            let (shape, max_tokens) =
                self.decoder(h).ok_or_else(|| Error::Request("internal: not a generation head".into()))?;
            let g = generate::generate(&self.backend, self.source(), &h.name, shape, z, sampling(params, max_tokens))?;
            return Ok(generated(g));
        }
        self.heads_for(h, &[(z.clone(), spans.to_vec())])?
            .pop()
            .ok_or_else(|| Error::Request(format!("internal: head {} gave no answer", h.name)))
    }
}

/// A request's sampling for a generation head whose config allows `max_tokens` by default.
fn sampling(params: &Parameters, max_tokens: usize) -> Sampling {
    Sampling {
        max_tokens: params.max_tokens.unwrap_or(max_tokens),
        temperature: params.temperature.unwrap_or(0.0),
        top_k: params.top_k.unwrap_or(0),
        seed: params.seed.unwrap_or(0),
    }
}

/// The generation head's answer: its tokens, read as bytes.
fn generated(g: generate::Generated) -> HeadResult {
    let bytes: Vec<u8> = g.tokens.iter().filter_map(|&t| u8::try_from(t).ok()).collect();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    HeadResult::Generation { tokens: g.tokens, text, logprobs: g.logprobs }
}

/// Each input's rows `(start, end)` in a request's fused sequence.
fn spans(encoded: &[Encoded]) -> Vec<(usize, usize)> {
    let mut spans = Vec::with_capacity(encoded.len());
    let mut at = 0;
    for e in encoded {
        spans.push((at, at + e.len()));
        at += e.len();
    }
    spans
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Which modalities a response's inputs hold, for reports.
pub fn modality_mix(inputs: &[InputSummary]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for m in Modality::ALL {
        if inputs.iter().any(|i| i.modality == m) {
            names.push(m.name());
        }
    }
    names.join("+")
}
