//! Sentence embeddings with a pretrained text encoder (e.g. sentence-transformers'
//! all-MiniLM-L6-v2): tokenise as sentence-transformers does (the HF tokenizer, truncated to
//! `max_tokens` special tokens included, no padding), run BERT over every sentence of a batch
//! packed into one graph (varlen attention, no padding), pool each sentence into one vector,
//! and L2-normalise it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use omnifuse_core::quant::quantize_matrix;
use omnifuse_core::{Backend, DType, HostTensor, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

use crate::bert;
use crate::builder::{Builder, to_f32};
use crate::error::{Error, Result};
use crate::precision::Precision;
use crate::st_import::{EncoderFile, EncoderFiles};
use crate::weights::{SCALE_SUFFIX, scale_name};

/// Most tokens packed into one graph run (sentences are never split across runs).
pub const BATCH_TOKENS: usize = 8192;
/// Most sentences per graph run, by default.
pub const BATCH_SENTENCES: usize = 256;

/// A text encoder loaded on one backend.
pub struct SentenceEncoder {
    spec: EncoderFile,
    tokenizer: Tokenizer,
    backend: Arc<dyn Backend>,
    weights: HashMap<String, Tensor>,
    parameters: usize,
    max_batch: usize,
}

/// Sentence vectors and the token ids they came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    /// One vector per sentence, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Each sentence's token ids, special tokens included, after truncation.
    pub ids: Vec<Vec<i32>>,
}

impl SentenceEncoder {
    /// Load a text-encoder directory (omnifuse `encoder.toml` or sentence-transformers
    /// `modules.json`) onto `backend`.
    pub fn load(dir: &Path, backend: Arc<dyn Backend>) -> Result<SentenceEncoder> {
        SentenceEncoder::new(EncoderFiles::read(dir)?, backend)
    }

    /// Load a text-encoder directory in `precision`: INT8 quantises the dense layers' weights
    /// per output channel as they load (activations per token at run time; embeddings,
    /// layer norms, attention and pooling stay f32); FP16 stores every weight and activation
    /// in f16 (each op computes in f32).
    pub fn load_in(dir: &Path, backend: Arc<dyn Backend>, precision: Precision) -> Result<SentenceEncoder> {
        let mut files = EncoderFiles::read(dir)?;
        if precision == Precision::Int8 {
            let names: Vec<String> = files
                .tensors
                .iter()
                .filter(|(n, t)| bert::is_linear_weight(n, t.desc.shape.dims()) && t.desc.dtype == DType::F32)
                .map(|(n, _)| n.clone())
                .collect();
            for name in names {
                let t = &files.tensors[&name];
                let k = t.desc.shape.dims()[1];
                let (q, steps) = quantize_matrix(&t.to_f32(), k);
                let q = HostTensor::from_slice(t.desc.shape.dims(), &q)?;
                files.tensors.insert(scale_name(&name), HostTensor::from_slice([steps.len()], &steps)?);
                files.tensors.insert(name, q);
            }
        }
        if precision == Precision::Fp16 {
            for t in files.tensors.values_mut() {
                if t.desc.dtype == DType::F32 {
                    *t = crate::builder::to_f16(t);
                }
            }
        }
        SentenceEncoder::new(files, backend)
    }

    /// An encoder from files already read.
    pub fn new(files: EncoderFiles, backend: Arc<dyn Backend>) -> Result<SentenceEncoder> {
        let spec = files.spec;
        spec.validate()?;
        let path = &files.tokenizer;
        let mut tokenizer = Tokenizer::from_file(path)
            .map_err(|e| Error::Config(format!("tokenizer {}: cannot load: {e}", path.display())))?;
        let size = tokenizer.get_vocab_size(true);
        if size > spec.bert.vocab {
            return Err(Error::Config(format!(
                "tokenizer {}: {size} ids do not fit the {} rows of the word embeddings",
                path.display(),
                spec.bert.vocab
            )));
        }
        tokenizer.with_padding(None);
        let trunc = TruncationParams { max_length: spec.tokenizer.max_tokens, ..TruncationParams::default() };
        tokenizer
            .with_truncation(Some(trunc))
            .map_err(|e| Error::Config(format!("tokenizer {}: cannot truncate: {e}", path.display())))?;
        let mut weights = HashMap::new();
        for (name, t) in &files.tensors {
            weights.insert(name.clone(), backend.to_device_constant(t)?);
        }
        let parameters =
            files.tensors.iter().filter(|(n, _)| !n.ends_with(SCALE_SUFFIX)).map(|(_, t)| t.desc.numel()).sum();
        Ok(SentenceEncoder { spec, tokenizer, backend, weights, parameters, max_batch: BATCH_SENTENCES })
    }

    /// Run at most `n` sentences per graph (at least 1; default [`BATCH_SENTENCES`]).
    pub fn set_max_batch(&mut self, n: usize) {
        self.max_batch = n.max(1);
    }

    /// What the encoder is.
    pub fn spec(&self) -> &EncoderFile {
        &self.spec
    }

    /// Width of the sentence vectors.
    pub fn dim(&self) -> usize {
        self.spec.bert.width
    }

    /// Number of parameters.
    pub fn parameters(&self) -> usize {
        self.parameters
    }

    /// The backend's name.
    pub fn backend_name(&self) -> String {
        self.backend.name().to_string()
    }

    /// The token ids of `text`: the HF tokenizer with its special tokens, truncated to
    /// `max_tokens`. Empty text gives just the special tokens, as in sentence-transformers.
    pub fn tokenize(&self, text: &str) -> Result<Vec<i32>> {
        let lowered;
        let text = if self.spec.tokenizer.lowercase {
            lowered = text.to_lowercase();
            lowered.as_str()
        } else {
            text
        };
        let enc = self.tokenizer.encode(text, true).map_err(|e| Error::Request(format!("tokenizer failed: {e}")))?;
        let ids = enc
            .get_ids()
            .iter()
            .map(|&id| i32::try_from(id).map_err(|_| Error::Request(format!("tokenizer gave id {id}, beyond i32"))))
            .collect::<Result<Vec<i32>>>()?;
        if ids.is_empty() {
            return Err(Error::Request("the tokenizer gave no tokens (not even its special tokens)".into()));
        }
        Ok(ids)
    }

    /// Embed `texts`: tokenise, encode in batches of at most [`BATCH_TOKENS`] tokens and the
    /// batch size in sentences, pool, normalise.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Embeddings> {
        let ids = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                self.tokenize(t.as_ref()).map_err(|e| match e {
                    Error::Request(m) => Error::input(i, m),
                    other => other,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let vectors = self.embed_ids(&ids)?;
        Ok(Embeddings { vectors, ids })
    }

    /// Sentence vectors of token-id sequences (special tokens included), batched.
    pub fn embed_ids(&self, seqs: &[Vec<i32>]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(seqs.len());
        let mut start = 0;
        while start < seqs.len() {
            let mut end = start + 1;
            let mut tokens = seqs[start].len();
            while end < seqs.len() && end - start < self.max_batch && tokens + seqs[end].len() <= BATCH_TOKENS {
                tokens += seqs[end].len();
                end += 1;
            }
            let batch: Vec<&[i32]> = seqs[start..end].iter().map(Vec::as_slice).collect();
            out.extend(self.embed_batch(&batch).map_err(|e| match e {
                Error::Input { index, detail } => Error::Input { index: index + start, detail },
                other => other,
            })?);
            start = end;
        }
        Ok(out)
    }

    /// One graph run over `batch`.
    fn embed_batch(&self, batch: &[&[i32]]) -> Result<Vec<Vec<f32>>> {
        let cfg = &self.spec.bert;
        let mut b = Builder::new(&self.weights, cfg.eps);
        let x = bert::encode(&mut b, cfg, "", batch)?;
        let lengths: Vec<usize> = batch.iter().map(|s| s.len()).collect();
        let pooled = bert::pool(&mut b, x, &lengths, self.spec.pooling.mode)?;
        let out = b.run(&self.backend, &[pooled])?;
        let flat = to_f32(&self.backend, &out[0])?;
        let w = cfg.width;
        if flat.len() != batch.len() * w {
            return Err(Error::Request(format!(
                "internal: pooled output has {} values, expected {} × {w}",
                flat.len(),
                batch.len()
            )));
        }
        Ok(flat
            .chunks_exact(w)
            .map(|row| {
                let mut v = row.to_vec();
                if self.spec.pooling.normalize {
                    bert::normalize(&mut v);
                }
                v
            })
            .collect())
    }
}
