//! Text-encoder directories: reading a sentence-transformers model directory (as its
//! publisher ships it: `modules.json`, a BERT `config.json` + `model.safetensors` +
//! `tokenizer.json`, `sentence_bert_config.json`, `1_Pooling/config.json`, optional
//! Normalize), and omnifuse's own text-encoder directory that `omnifuse import` writes:
//!
//! ```text
//! encoder.toml        what the encoder is (the [`EncoderFile`] below)
//! model.safetensors   the BERT tensors, f32, HF names without a `bert.` prefix
//! tokenizer.json      the HF tokenizer, as published
//! ```
//!
//! `encoder.toml` example (all-MiniLM-L6-v2):
//!
//! ```toml
//! [encoder]
//! kind = "bert"
//! name = "all-MiniLM-L6-v2"
//! source = "sentence-transformers"
//!
//! [bert]
//! vocab = 30522
//! width = 384
//! layers = 6
//! heads = 12
//! intermediate = 1536
//! max_positions = 512
//! type_vocab = 2
//! eps = 1e-12
//!
//! [tokenizer]
//! file = "tokenizer.json"
//! max_tokens = 256     # truncation, [CLS] and [SEP] included (sentence-transformers' max_seq_length)
//! lowercase = false    # lower-case before the tokenizer (sentence-transformers' do_lower_case)
//!
//! [pooling]
//! mode = "mean"        # mean | cls | mean_sqrt_len
//! normalize = true     # L2-normalise each sentence vector
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use omnifuse_core::tensor::bytes_to_f32;
use omnifuse_core::{DType, HostTensor};
use safetensors::{Dtype as StDtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::bert::{BertConfig, Pooling};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::weights::{F32View, TEXT_BERT, Weights};

/// Config file of an omnifuse text-encoder directory.
pub const ENCODER_FILE: &str = "encoder.toml";
/// Weights file of an omnifuse text-encoder directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Tokenizer file of an omnifuse text-encoder directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// `encoder.toml`: everything needed to turn sentences into vectors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderFile {
    /// What the encoder is.
    pub encoder: EncoderSection,
    /// The BERT hyperparameters.
    pub bert: BertConfig,
    /// Tokenisation.
    pub tokenizer: TokenizerSection,
    /// Pooling into one vector per sentence.
    pub pooling: PoolingSection,
}

/// `[encoder]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderSection {
    /// Architecture: `bert`.
    pub kind: String,
    /// Model name, reported with results.
    pub name: String,
    /// Where it was imported from (`sentence-transformers`).
    pub source: String,
}

/// `[tokenizer]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerSection {
    /// The HF `tokenizer.json`, relative to the directory.
    pub file: String,
    /// Longest token sequence, special tokens included; longer texts are truncated.
    pub max_tokens: usize,
    /// Lower-case the text before tokenising.
    pub lowercase: bool,
}

/// `[pooling]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolingSection {
    /// How token states become one vector.
    pub mode: Pooling,
    /// L2-normalise the pooled vector.
    pub normalize: bool,
}

impl EncoderFile {
    /// Parse `encoder.toml` text and check it.
    pub fn from_toml(text: &str) -> Result<EncoderFile> {
        let f: EncoderFile = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        f.validate()?;
        Ok(f)
    }

    /// The TOML text.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::Config(format!("cannot write encoder.toml: {e}")))
    }

    /// Check the sections fit together.
    pub fn validate(&self) -> Result<()> {
        if self.encoder.kind != "bert" {
            return Err(Error::Config(format!("encoder.kind is '{}', expected 'bert'", self.encoder.kind)));
        }
        self.bert.validate()?;
        let t = &self.tokenizer;
        if t.max_tokens < 2 || t.max_tokens > self.bert.max_positions {
            return Err(Error::Config(format!(
                "tokenizer.max_tokens is {}, expected 2 to {} (bert.max_positions)",
                t.max_tokens, self.bert.max_positions
            )));
        }
        Ok(())
    }
}

/// A text encoder read from disk: its description, its tensors (HF names, f32) and where its
/// tokenizer is.
pub struct EncoderFiles {
    /// The description.
    pub spec: EncoderFile,
    /// The BERT tensors by name (no prefix).
    pub tensors: BTreeMap<String, HostTensor>,
    /// Path of `tokenizer.json`.
    pub tokenizer: PathBuf,
}

impl EncoderFiles {
    /// Read an omnifuse text-encoder directory (with `encoder.toml`) or a sentence-transformers
    /// directory (with `modules.json`).
    pub fn read(dir: &Path) -> Result<EncoderFiles> {
        if dir.join(ENCODER_FILE).is_file() {
            read_omnifuse(dir)
        } else if dir.join("modules.json").is_file() {
            read_sentence_transformers(dir)
        } else {
            Err(Error::Config(format!(
                "{} is not a text-encoder directory: expected {ENCODER_FILE} (omnifuse import) or modules.json \
                 (sentence-transformers)",
                dir.display()
            )))
        }
    }

    /// Write as an omnifuse text-encoder directory.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let mut spec = self.spec.clone();
        spec.tokenizer.file = TOKENIZER_FILE.into();
        let cfg = dir.join(ENCODER_FILE);
        std::fs::write(&cfg, spec.to_toml()?).map_err(|e| Error::io(format!("writing {}", cfg.display()), e))?;
        let tok = dir.join(TOKENIZER_FILE);
        if std::fs::canonicalize(&self.tokenizer).ok() != std::fs::canonicalize(&tok).ok() {
            std::fs::copy(&self.tokenizer, &tok)
                .map_err(|e| Error::io(format!("copying {} to {}", self.tokenizer.display(), tok.display()), e))?;
        }
        let path = dir.join(WEIGHTS_FILE);
        let views: Vec<(&str, F32View<'_>)> = self.tensors.iter().map(|(n, t)| (n.as_str(), F32View(t))).collect();
        safetensors::serialize_to_file(views, None, &path)
            .map_err(|e| Error::Weights(format!("writing {}: {e}", path.display())))
    }

    /// Number of parameters.
    pub fn parameters(&self) -> usize {
        self.tensors.values().map(|t| t.desc.numel()).sum()
    }
}

/// An omni-modal model whose text encoder is `files`' BERT: `config` (e.g. a preset) with
/// `text.encoder = "bert"` and `limits.max_text_tokens` at the encoder's truncation length;
/// its seeded weights with every `text.bert.*` tensor replaced by the pretrained one (the
/// projection `text.proj` and all other parts stay as generated); and the `tokenizer.json` text
/// for the model directory — the published one without padding, truncating at `max_tokens`.
pub fn omni_model(files: &EncoderFiles, mut config: Config) -> Result<(Config, Weights, String)> {
    let bert = files.spec.bert.clone();
    config.text.encoder = "bert".into();
    config.text.vocab = bert.vocab;
    (config.text.embed, config.text.widths, config.text.channels) = (0, Vec::new(), 0);
    config.text.bert = Some(bert);
    config.limits.max_text_tokens = files.spec.tokenizer.max_tokens;
    config.validate()?;
    let mut weights = Weights::generate(&config)?;
    for (name, t) in &files.tensors {
        weights.replace(&format!("{TEXT_BERT}{name}"), t.clone())?;
    }
    let path = &files.tokenizer;
    let mut tok: serde_json::Value = serde_json::from_str(&read_text(path)?)
        .map_err(|e| Error::Config(format!("{}: not JSON: {e}", path.display())))?;
    let obj =
        tok.as_object_mut().ok_or_else(|| Error::Config(format!("{}: expected a JSON object", path.display())))?;
    obj.insert("padding".into(), serde_json::Value::Null);
    obj.insert(
        "truncation".into(),
        serde_json::json!({
            "direction": "Right",
            "max_length": files.spec.tokenizer.max_tokens,
            "strategy": "LongestFirst",
            "stride": 0
        }),
    );
    let text = serde_json::to_string(&tok).map_err(|e| Error::Config(format!("tokenizer.json: {e}")))?;
    Ok((config, weights, text))
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

fn read_omnifuse(dir: &Path) -> Result<EncoderFiles> {
    let cfg = dir.join(ENCODER_FILE);
    let spec = EncoderFile::from_toml(&read_text(&cfg)?).map_err(|e| match e {
        Error::Config(m) => Error::Config(format!("{}: {m}", cfg.display())),
        other => other,
    })?;
    let tensors = load_bert_tensors(&dir.join(WEIGHTS_FILE), &spec.bert)?;
    let tokenizer = dir.join(&spec.tokenizer.file);
    Ok(EncoderFiles { spec, tensors, tokenizer })
}

/// One entry of `modules.json`.
#[derive(Deserialize)]
struct ModuleEntry {
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

/// `sentence_bert_config.json`.
#[derive(Deserialize)]
struct SbertConfig {
    max_seq_length: Option<usize>,
    #[serde(default)]
    do_lower_case: bool,
}

/// Read a sentence-transformers directory: Transformer (BERT) → Pooling → optional Normalize.
pub fn read_sentence_transformers(dir: &Path) -> Result<EncoderFiles> {
    let modules_path = dir.join("modules.json");
    let modules: Vec<ModuleEntry> = serde_json::from_str(&read_text(&modules_path)?)
        .map_err(|e| Error::Config(format!("{}: not a modules.json list: {e}", modules_path.display())))?;
    let kind = |m: &ModuleEntry| m.kind.rsplit('.').next().unwrap_or_default().to_string();
    let kinds: Vec<String> = modules.iter().map(kind).collect();
    let pipeline_ok = matches!(
        kinds.iter().map(String::as_str).collect::<Vec<_>>().as_slice(),
        ["Transformer", "Pooling"] | ["Transformer", "Pooling", "Normalize"]
    );
    if !pipeline_ok {
        return Err(Error::Config(format!(
            "{}: modules are [{}], expected Transformer, Pooling and optionally Normalize",
            modules_path.display(),
            kinds.join(", ")
        )));
    }
    let tdir = dir.join(&modules[0].path);
    let bert = BertConfig::from_hf_json(&read_text(&tdir.join("config.json"))?)
        .map_err(|e| Error::Config(format!("{}: {e}", tdir.join("config.json").display())))?;
    let sbert_path = tdir.join("sentence_bert_config.json");
    let sbert = if sbert_path.is_file() {
        serde_json::from_str::<SbertConfig>(&read_text(&sbert_path)?)
            .map_err(|e| Error::Config(format!("{}: {e}", sbert_path.display())))?
    } else {
        SbertConfig { max_seq_length: None, do_lower_case: false }
    };
    let max_tokens = sbert.max_seq_length.unwrap_or(bert.max_positions);
    let pool_path = dir.join(&modules[1].path).join("config.json");
    let pooling = read_pooling(&pool_path, bert.width)?;
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "sentence-transformers".into());
    let spec = EncoderFile {
        encoder: EncoderSection { kind: "bert".into(), name, source: "sentence-transformers".into() },
        bert,
        tokenizer: TokenizerSection { file: TOKENIZER_FILE.into(), max_tokens, lowercase: sbert.do_lower_case },
        pooling: PoolingSection { mode: pooling, normalize: modules.len() == 3 },
    };
    spec.validate().map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
    let tensors = load_bert_tensors(&tdir.join("model.safetensors"), &spec.bert)?;
    let tokenizer = tdir.join(TOKENIZER_FILE);
    if !tokenizer.is_file() {
        return Err(Error::Config(format!("{} is missing: expected the HF fast tokenizer", tokenizer.display())));
    }
    Ok(EncoderFiles { spec, tensors, tokenizer })
}

/// The pooling mode of a sentence-transformers `1_Pooling/config.json`: exactly one of the
/// linear modes (mean, CLS, mean·sqrt(len)).
fn read_pooling(path: &Path, width: usize) -> Result<Pooling> {
    let v: serde_json::Value = serde_json::from_str(&read_text(path)?)
        .map_err(|e| Error::Config(format!("{}: not JSON: {e}", path.display())))?;
    let flag = |k: &str| v.get(k).and_then(serde_json::Value::as_bool).unwrap_or(false);
    if let Some(d) = v.get("word_embedding_dimension").and_then(serde_json::Value::as_u64)
        && d as usize != width
    {
        return Err(Error::Config(format!(
            "{}: word_embedding_dimension is {d}, expected the BERT width {width}",
            path.display()
        )));
    }
    for unsupported in ["pooling_mode_max_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"] {
        if flag(unsupported) {
            return Err(Error::Config(format!(
                "{}: {unsupported} is set, but only mean, CLS and mean·sqrt(len) pooling are implemented",
                path.display()
            )));
        }
    }
    let modes = [
        ("pooling_mode_mean_tokens", Pooling::Mean),
        ("pooling_mode_cls_token", Pooling::Cls),
        ("pooling_mode_mean_sqrt_len_tokens", Pooling::MeanSqrtLen),
    ];
    let on: Vec<Pooling> = modes.iter().filter(|(k, _)| flag(k)).map(|(_, p)| *p).collect();
    match on.as_slice() {
        [one] => Ok(*one),
        _ => Err(Error::Config(format!(
            "{}: {} pooling modes are set, expected exactly one of mean, cls, mean_sqrt_len",
            path.display(),
            on.len()
        ))),
    }
}

/// Tensors of a HF BERT checkpoint that the encoder does not read and may be skipped.
fn ignorable(name: &str) -> bool {
    name == "embeddings.position_ids" || name.starts_with("pooler.")
}

/// Read a BERT `model.safetensors` and check it against `cfg`: a `bert.` prefix is dropped,
/// f16/bf16 tensors are widened to f32, the position-id buffer and the pooler are skipped;
/// any other tensor missing, extra or of the wrong shape is an error naming it.
pub fn load_bert_tensors(path: &Path, cfg: &BertConfig) -> Result<BTreeMap<String, HostTensor>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    bert_tensors_from_bytes(&bytes, cfg).map_err(|e| match e {
        Error::Weights(m) => Error::Weights(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// [`load_bert_tensors`] on safetensors bytes.
pub fn bert_tensors_from_bytes(bytes: &[u8], cfg: &BertConfig) -> Result<BTreeMap<String, HostTensor>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| Error::Weights(format!("not a safetensors file: {e}")))?;
    let expected: BTreeMap<String, Vec<usize>> = cfg.spec().into_iter().collect();
    let mut tensors = BTreeMap::new();
    let mut extra = Vec::new();
    // In name order, so the first problem reported is the same on every run.
    let mut stored_tensors = st.tensors();
    stored_tensors.sort_by(|a, b| a.0.cmp(&b.0));
    for (stored, view) in stored_tensors {
        let name = stored.strip_prefix("bert.").unwrap_or(&stored).to_string();
        let Some(shape) = expected.get(&name) else {
            if !ignorable(&name) {
                extra.push(stored);
            }
            continue;
        };
        if view.shape() != shape.as_slice() {
            return Err(Error::Weights(format!("tensor '{stored}' has shape {:?}, expected {shape:?}", view.shape())));
        }
        let values = match view.dtype() {
            StDtype::F32 => bytes_to_f32(DType::F32, view.data()),
            StDtype::F16 => bytes_to_f32(DType::F16, view.data()),
            StDtype::BF16 => bytes_to_f32(DType::BF16, view.data()),
            other => {
                return Err(Error::Weights(format!("tensor '{stored}' is {other:?}, expected F32, F16 or BF16")));
            }
        };
        if tensors.insert(name.clone(), HostTensor::from_slice(shape.as_slice(), &values)?).is_some() {
            return Err(Error::Weights(format!("tensor '{name}' appears twice (with and without 'bert.')")));
        }
    }
    if !extra.is_empty() {
        extra.sort_unstable();
        return Err(Error::Weights(format!(
            "{} tensor(s) a BERT encoder does not use: {}",
            extra.len(),
            extra.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let missing: Vec<String> =
        expected.iter().filter(|(n, _)| !tensors.contains_key(*n)).map(|(n, s)| format!("{n} {s:?}")).collect();
    if !missing.is_empty() {
        return Err(Error::Weights(format!(
            "{} tensor(s) missing: {}",
            missing.len(),
            missing.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> BertConfig {
        BertConfig {
            vocab: 10,
            width: 4,
            layers: 1,
            heads: 2,
            intermediate: 8,
            max_positions: 6,
            type_vocab: 2,
            eps: 1e-12,
        }
    }

    /// Safetensors bytes of `cfg`'s tensors under `prefix`, plus `extra` f32 tensors.
    fn checkpoint(cfg: &BertConfig, prefix: &str, extra: &[(&str, Vec<usize>)]) -> Vec<u8> {
        let mut all: Vec<(String, Vec<usize>)> =
            cfg.spec().into_iter().map(|(n, s)| (format!("{prefix}{n}"), s)).collect();
        all.extend(extra.iter().map(|(n, s)| (n.to_string(), s.clone())));
        let data: Vec<(String, Vec<usize>, Vec<u8>)> = all
            .into_iter()
            .map(|(n, s)| {
                let len: usize = s.iter().product();
                let bytes = (0..len).flat_map(|i| (i as f32 * 0.01).to_le_bytes()).collect();
                (n, s, bytes)
            })
            .collect();
        let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = data
            .iter()
            .map(|(n, s, b)| (n.as_str(), safetensors::tensor::TensorView::new(StDtype::F32, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize(views, None).unwrap()
    }

    #[test]
    fn a_bert_prefix_the_pooler_and_position_ids_are_accepted() {
        let cfg = tiny();
        let bytes = checkpoint(
            &cfg,
            "bert.",
            &[("bert.pooler.dense.weight", vec![4, 4]), ("embeddings.position_ids", vec![1, 6])],
        );
        let t = bert_tensors_from_bytes(&bytes, &cfg).unwrap();
        assert_eq!(t.len(), cfg.spec().len());
        assert_eq!(t["encoder.layer.0.intermediate.dense.weight"].desc.shape.dims(), &[8, 4]);
        assert!(bert_tensors_from_bytes(&checkpoint(&cfg, "", &[]), &cfg).is_ok());
    }

    #[test]
    fn missing_extra_and_misshapen_tensors_are_named() {
        let cfg = tiny();
        let err = bert_tensors_from_bytes(&checkpoint(&cfg, "", &[("cls.predictions.bias", vec![10])]), &cfg)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not use: cls.predictions.bias"), "{err}");
        let mut more = cfg.clone();
        more.layers = 2;
        let err = bert_tensors_from_bytes(&checkpoint(&cfg, "", &[]), &more).unwrap_err().to_string();
        assert!(err.contains("missing") && err.contains("encoder.layer.1."), "{err}");
        let mut wider = cfg.clone();
        wider.intermediate = 16;
        let err = bert_tensors_from_bytes(&checkpoint(&cfg, "", &[]), &wider).unwrap_err().to_string();
        assert!(err.contains("intermediate.dense.bias' has shape [8], expected [16]"), "{err}");
        assert!(bert_tensors_from_bytes(b"nope", &cfg).is_err());
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("omnifuse-st-{name}-{}", std::process::id()));
        std::fs::create_dir_all(d.join("1_Pooling")).unwrap();
        d
    }

    #[test]
    fn unsupported_pooling_and_modules_are_refused() {
        let d = scratch("pool");
        let p = d.join("1_Pooling/config.json");
        std::fs::write(&p, r#"{"word_embedding_dimension":4,"pooling_mode_max_tokens":true}"#).unwrap();
        let err = read_pooling(&p, 4).unwrap_err().to_string();
        assert!(err.contains("pooling_mode_max_tokens"), "{err}");
        std::fs::write(&p, r#"{"pooling_mode_mean_tokens":true,"pooling_mode_cls_token":true}"#).unwrap();
        assert!(read_pooling(&p, 4).unwrap_err().to_string().contains("2 pooling modes"));
        std::fs::write(&p, r#"{"word_embedding_dimension":8,"pooling_mode_mean_tokens":true}"#).unwrap();
        assert!(read_pooling(&p, 4).unwrap_err().to_string().contains("expected the BERT width 4"));
        std::fs::write(&p, r#"{"word_embedding_dimension":4,"pooling_mode_cls_token":true}"#).unwrap();
        assert_eq!(read_pooling(&p, 4).unwrap(), Pooling::Cls);
        let modules = r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
            {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
            {"idx":2,"name":"2","path":"2_Dense","type":"sentence_transformers.models.Dense"}]"#;
        std::fs::write(d.join("modules.json"), modules).unwrap();
        let err = EncoderFiles::read(&d).err().unwrap().to_string();
        assert!(err.contains("[Transformer, Pooling, Dense]"), "{err}");
        std::fs::remove_dir_all(&d).unwrap();
        let err = EncoderFiles::read(&d).err().unwrap().to_string();
        assert!(err.contains("not a text-encoder directory"), "{err}");
    }

    #[test]
    fn encoder_toml_round_trips_and_is_checked() {
        let f = EncoderFile {
            encoder: EncoderSection { kind: "bert".into(), name: "tiny".into(), source: "test".into() },
            bert: tiny(),
            tokenizer: TokenizerSection { file: TOKENIZER_FILE.into(), max_tokens: 6, lowercase: false },
            pooling: PoolingSection { mode: Pooling::Mean, normalize: true },
        };
        let text = f.to_toml().unwrap();
        assert!(text.contains("mode = \"mean\""), "{text}");
        assert_eq!(EncoderFile::from_toml(&text).unwrap(), f);
        let err = EncoderFile::from_toml(&text.replace("max_tokens = 6", "max_tokens = 7")).unwrap_err().to_string();
        assert!(err.contains("max_tokens is 7, expected 2 to 6"), "{err}");
        assert!(EncoderFile::from_toml(&text.replace("kind = \"bert\"", "kind = \"gpt\"")).is_err());
        assert!(EncoderFile::from_toml(&format!("{text}\nstray = 1\n")).is_err());
    }
}
