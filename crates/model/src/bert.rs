//! BERT as a text encoder (the architecture of sentence-transformers models such as
//! all-MiniLM-L6-v2): word + position + token-type embeddings, an embedding layer norm, then
//! post-LN transformer blocks, built as core ops on a [`Builder`].
//!
//! Exactly, with `Linear` and `LN` as in MODEL.md and the config's own `eps`, for one sentence
//! of ids `t [L]` (several sentences are packed one after the other and never attend across):
//!
//! ```text
//! x = LN(word[t] + position[0..L] + token_type[0]; embeddings.LayerNorm)
//! per layer i (prefix encoder.layer.{i}):
//!   a = Attn(x)              q, k, v = Linear(x; attention.self.{query,key,value}), heads split
//!                            as [L, H, W/H], softmax(q·kᵀ / sqrt(W/H))·v per head
//!   x = LN(Linear(a; attention.output.dense) + x; attention.output.LayerNorm)
//!   x = LN(Linear(GELU(Linear(x; intermediate.dense)); output.dense) + x; output.LayerNorm)
//! ```
//!
//! GELU is the exact erf form (HF `hidden_act = "gelu"`). Tensor names are those of HF
//! `BertModel` safetensors (without the `bert.` prefix a `BertFor…` checkpoint adds). Pooling
//! into one vector per sentence (mean, CLS, mean·sqrt(len)) is a `[B, T]` weight matrix times
//! the packed hidden states — one GEMM for the whole batch.

use serde::{Deserialize, Serialize};

use omnifuse_core::attention::MaskMode;
use omnifuse_core::graph::ValueId;
use omnifuse_core::op::{Activation, Epilogue, GemmSpec};
use omnifuse_core::{HostTensor, Op};

use crate::builder::Builder;
use crate::error::{Error, Result};

/// The hyperparameters of a BERT encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BertConfig {
    /// Vocabulary size (rows of the word embedding table).
    pub vocab: usize,
    /// Hidden width W.
    pub width: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Attention heads (divides W).
    pub heads: usize,
    /// Hidden width of each block's feed-forward part.
    pub intermediate: usize,
    /// Rows of the position table: the longest sequence it can encode.
    pub max_positions: usize,
    /// Rows of the token-type table.
    pub type_vocab: usize,
    /// Layer-norm epsilon.
    pub eps: f32,
}

/// The fields of a Hugging Face `config.json` this encoder reads (others are ignored).
#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    type_vocab_size: usize,
    layer_norm_eps: f32,
    hidden_act: String,
    position_embedding_type: Option<String>,
}

impl BertConfig {
    /// The hyperparameters of a Hugging Face BERT `config.json`; refuses what this encoder
    /// does not compute (another activation, relative positions, another model type).
    pub fn from_hf_json(text: &str) -> Result<BertConfig> {
        let hf: HfConfig =
            serde_json::from_str(text).map_err(|e| Error::Config(format!("not a BERT config.json: {e}")))?;
        if let Some(t) = &hf.model_type
            && t != "bert"
        {
            return Err(Error::Config(format!("model_type is '{t}', expected 'bert'")));
        }
        if hf.hidden_act != "gelu" {
            return Err(Error::Config(format!(
                "hidden_act is '{}', expected 'gelu' (the exact erf form, the only one implemented)",
                hf.hidden_act
            )));
        }
        if let Some(p) = &hf.position_embedding_type
            && p != "absolute"
        {
            return Err(Error::Config(format!("position_embedding_type is '{p}', expected 'absolute'")));
        }
        let c = BertConfig {
            vocab: hf.vocab_size,
            width: hf.hidden_size,
            layers: hf.num_hidden_layers,
            heads: hf.num_attention_heads,
            intermediate: hf.intermediate_size,
            max_positions: hf.max_position_embeddings,
            type_vocab: hf.type_vocab_size,
            eps: hf.layer_norm_eps,
        };
        c.validate()?;
        Ok(c)
    }

    /// Check the sizes are usable.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            ("vocab", self.vocab),
            ("width", self.width),
            ("layers", self.layers),
            ("heads", self.heads),
            ("intermediate", self.intermediate),
            ("max_positions", self.max_positions),
            ("type_vocab", self.type_vocab),
        ];
        for (name, v) in sizes {
            if v == 0 {
                return Err(Error::Config(format!("bert.{name} is 0, expected at least 1")));
            }
        }
        if !self.width.is_multiple_of(self.heads) {
            return Err(Error::Config(format!(
                "bert.width {} is not a multiple of bert.heads {}",
                self.width, self.heads
            )));
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(Error::Config(format!("bert.eps is {}, expected a positive finite number", self.eps)));
        }
        Ok(())
    }

    /// Every tensor the encoder reads: name (without prefix) and shape, sorted by name.
    pub fn spec(&self) -> Vec<(String, Vec<usize>)> {
        let (w, f) = (self.width, self.intermediate);
        let mut s: Vec<(String, Vec<usize>)> = vec![
            ("embeddings.word_embeddings.weight".into(), vec![self.vocab, w]),
            ("embeddings.position_embeddings.weight".into(), vec![self.max_positions, w]),
            ("embeddings.token_type_embeddings.weight".into(), vec![self.type_vocab, w]),
            ("embeddings.LayerNorm.weight".into(), vec![w]),
            ("embeddings.LayerNorm.bias".into(), vec![w]),
        ];
        for l in 0..self.layers {
            let p = format!("encoder.layer.{l}");
            let mut linear = |name: &str, out: usize, inp: usize| {
                s.push((format!("{p}.{name}.weight"), vec![out, inp]));
                s.push((format!("{p}.{name}.bias"), vec![out]));
            };
            linear("attention.self.query", w, w);
            linear("attention.self.key", w, w);
            linear("attention.self.value", w, w);
            linear("attention.output.dense", w, w);
            linear("intermediate.dense", f, w);
            linear("output.dense", w, f);
            for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
                s.push((format!("{p}.{ln}.weight"), vec![w]));
                s.push((format!("{p}.{ln}.bias"), vec![w]));
            }
        }
        s.sort_by(|a, b| a.0.cmp(&b.0));
        s
    }

    /// Number of parameters.
    pub fn parameters(&self) -> usize {
        self.spec().iter().map(|(_, shape)| shape.iter().product::<usize>()).sum()
    }

    /// Check that `seqs` are encodable: each 1..=max_positions ids, every id in the vocabulary.
    pub fn check_ids(&self, seqs: &[&[i32]]) -> Result<()> {
        if seqs.is_empty() {
            return Err(Error::Request("no sentences to encode: expected at least one".into()));
        }
        for (i, s) in seqs.iter().enumerate() {
            if s.is_empty() || s.len() > self.max_positions {
                return Err(Error::input(
                    i,
                    format!("{} tokens, expected 1 to {} (the position table's rows)", s.len(), self.max_positions),
                ));
            }
            if let Some(bad) = s.iter().find(|&&t| t < 0 || t as usize >= self.vocab) {
                return Err(Error::input(i, format!("token id {bad} is outside the vocabulary 0..{}", self.vocab)));
            }
        }
        Ok(())
    }
}

/// How a sentence's token states become one vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean over all the sentence's tokens (special tokens included).
    Mean,
    /// The first token's state (`[CLS]`).
    Cls,
    /// The sum of the token states divided by the square root of the token count.
    MeanSqrtLen,
}

impl Pooling {
    /// Name in configs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::MeanSqrtLen => "mean_sqrt_len",
        }
    }

    /// Row `s` of the pooling matrix, for a sentence of `len` tokens: its weight per token.
    fn weights(self, len: usize) -> Vec<f32> {
        match self {
            Pooling::Mean => vec![1.0 / len as f32; len],
            Pooling::MeanSqrtLen => vec![1.0 / (len as f32).sqrt(); len],
            Pooling::Cls => {
                let mut w = vec![0.0; len];
                w[0] = 1.0;
                w
            }
        }
    }
}

/// `x` layer-normalised with `p.weight`, `p.bias` and BERT's own epsilon.
/// Whether the BERT tensor `name` of `shape` is a `Linear` weight (the dense layers of each
/// block), as opposed to an embedding table or a layer norm.
pub fn is_linear_weight(name: &str, shape: &[usize]) -> bool {
    shape.len() == 2 && name.ends_with(".weight") && name.starts_with("encoder.")
}

fn layer_norm(b: &mut Builder, x: ValueId, p: &str, eps: f32) -> Result<ValueId> {
    let (g, beta) = (b.w(&format!("{p}.weight"))?, b.w(&format!("{p}.bias"))?);
    b.op(Op::LayerNorm { eps }, &[x, g, beta])
}

/// The encoder over packed sentences `seqs` (token ids with their special tokens): the last
/// layer's states `[T, W]`, `T` the total token count, sentence after sentence. Weights are
/// looked up as `{prefix}{name}` (`prefix` is empty or ends in a dot).
pub fn encode(b: &mut Builder, cfg: &BertConfig, prefix: &str, seqs: &[&[i32]]) -> Result<ValueId> {
    cfg.check_ids(seqs)?;
    let w = cfg.width;
    let lengths: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
    let total: usize = lengths.iter().sum();
    let flat: Vec<i32> = seqs.iter().flat_map(|s| s.iter().copied()).collect();
    let mut positions = Vec::with_capacity(total);
    for &l in &lengths {
        positions.extend((0..l).map(|p| p as i32));
    }
    let name = |n: &str| format!("{prefix}{n}");
    let ids = b.ids(&flat)?;
    let pos = b.ids(&positions)?;
    let word = b.w(&name("embeddings.word_embeddings.weight"))?;
    let x = b.op(Op::Embedding, &[word, ids])?;
    let pos_table = b.w(&name("embeddings.position_embeddings.weight"))?;
    let p = b.op(Op::Embedding, &[pos_table, pos])?;
    let x = b.op(Op::Add, &[x, p])?;
    // Single sentences have token type 0 throughout: row 0, broadcast over the tokens.
    let types = b.w(&name("embeddings.token_type_embeddings.weight"))?;
    let t0 = b.slice(types, 0, 0, 1)?;
    let t0 = b.reshape(t0, &[w])?;
    let x = b.op(Op::Add, &[x, t0])?;
    let mut x = layer_norm(b, x, &name("embeddings.LayerNorm"), cfg.eps)?;
    let layout = b.layout(&lengths, &vec![0; total], 1)?;
    for l in 0..cfg.layers {
        let p = name(&format!("encoder.layer.{l}"));
        let q = b.linear(x, &format!("{p}.attention.self.query"))?;
        let k = b.linear(x, &format!("{p}.attention.self.key"))?;
        let v = b.linear(x, &format!("{p}.attention.self.value"))?;
        let a = b.attention(q, k, v, cfg.heads, MaskMode::Full, &layout)?;
        let a = b.linear_ex(a, &format!("{p}.attention.output.dense"), true, Activation::None, Some(x))?;
        x = layer_norm(b, a, &format!("{p}.attention.output.LayerNorm"), cfg.eps)?;
        let h = b.linear_ex(x, &format!("{p}.intermediate.dense"), true, Activation::Gelu, None)?;
        let h = b.linear_ex(h, &format!("{p}.output.dense"), true, Activation::None, Some(x))?;
        x = layer_norm(b, h, &format!("{p}.output.LayerNorm"), cfg.eps)?;
    }
    Ok(x)
}

/// One vector per sentence `[B, W]` from packed states `x [T, W]` of sentences of `lengths`
/// tokens: the `[B, T]` pooling matrix times `x`.
pub fn pool(b: &mut Builder, x: ValueId, lengths: &[usize], pooling: Pooling) -> Result<ValueId> {
    let total: usize = lengths.iter().sum();
    let rows = b.dims(x)?[0];
    if rows != total {
        return Err(Error::Request(format!("internal: {rows} token states for sentences of {total} tokens")));
    }
    let mut m = vec![0.0f32; lengths.len() * total];
    let mut at = 0;
    for (s, &l) in lengths.iter().enumerate() {
        if l == 0 {
            return Err(Error::input(s, "a sentence of 0 tokens cannot be pooled"));
        }
        m[s * total + at..s * total + at + l].copy_from_slice(&pooling.weights(l));
        at += l;
    }
    let m = b.data(HostTensor::from_slice([lengths.len(), total], &m)?);
    let spec = GemmSpec { trans_a: false, trans_b: false, epilogue: Epilogue::default() };
    b.op(Op::Gemm(spec), &[m, x])
}

/// `v / max(‖v‖₂, 1e-12)`, in place (what sentence-transformers' `Normalize` does).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt().max(1e-12);
    for x in v.iter_mut() {
        *x = (f64::from(*x) / norm) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINILM: &str = r#"{"architectures":["BertModel"],"hidden_act":"gelu","hidden_size":384,
        "intermediate_size":1536,"layer_norm_eps":1e-12,"max_position_embeddings":512,"model_type":"bert",
        "num_attention_heads":12,"num_hidden_layers":6,"position_embedding_type":"absolute",
        "type_vocab_size":2,"vocab_size":30522}"#;

    #[test]
    fn hf_config_is_read_and_checked() {
        let c = BertConfig::from_hf_json(MINILM).unwrap();
        assert_eq!((c.width, c.layers, c.heads, c.intermediate, c.vocab), (384, 6, 12, 1536, 30522));
        assert_eq!(c.spec().len(), 5 + 6 * 16);
        assert_eq!(c.parameters(), 22_565_376); // the published 22.7M includes the pooler, unused here
        let bad = MINILM.replace("\"gelu\"", "\"relu\"");
        let err = BertConfig::from_hf_json(&bad).unwrap_err().to_string();
        assert!(err.contains("hidden_act is 'relu'"), "{err}");
        let bad = MINILM.replace("\"num_attention_heads\":12", "\"num_attention_heads\":7");
        let err = BertConfig::from_hf_json(&bad).unwrap_err().to_string();
        assert!(err.contains("not a multiple"), "{err}");
        assert!(BertConfig::from_hf_json("{}").is_err());
    }

    #[test]
    fn ids_out_of_range_or_too_long_are_refused() {
        let c = BertConfig::from_hf_json(MINILM).unwrap();
        let long = vec![1; 513];
        let err = c.check_ids(&[&[101, 102], &long]).unwrap_err().to_string();
        assert!(err.contains("input 1") && err.contains("513 tokens"), "{err}");
        let err = c.check_ids(&[&[101, 30522]]).unwrap_err().to_string();
        assert!(err.contains("30522 is outside"), "{err}");
        assert!(c.check_ids(&[]).is_err());
    }

    #[test]
    fn an_omni_config_with_a_bert_text_encoder_validates_and_round_trips() {
        use crate::config::Config;
        let bert = BertConfig::from_hf_json(MINILM).unwrap();
        let mut c = Config::omni_small();
        (c.text.encoder, c.text.vocab, c.text.bert) = ("bert".into(), bert.vocab, Some(bert.clone()));
        (c.text.embed, c.text.widths, c.text.channels) = (0, Vec::new(), 0);
        c.limits.max_text_tokens = 256;
        c.validate().unwrap();
        let text = c.to_toml().unwrap();
        assert!(text.contains("[text.bert]") && !text.contains("widths"), "{text}");
        assert_eq!(Config::from_toml(&text).unwrap(), c);
        let spec = crate::weights::spec(&c);
        let find = |n: &str| spec.iter().find(|w| w.name == n).map(|w| w.shape.clone());
        assert_eq!(find("text.bert.embeddings.word_embeddings.weight"), Some(vec![30522, 384]));
        assert_eq!(find("text.proj.weight"), Some(vec![256, 384]));
        assert_eq!(find("text.embed"), None);
        let preset = Config::omni_small().to_toml().unwrap();
        assert!(!preset.contains("bert") && preset.contains("widths"), "{preset}");
        let mut bad = c.clone();
        bad.text.bert = None;
        assert!(bad.validate().unwrap_err().to_string().contains("no [text.bert]"));
        let mut bad = c.clone();
        bad.text.vocab = 259;
        assert!(bad.validate().unwrap_err().to_string().contains("differs from text.bert.vocab"));
        let mut bad = c.clone();
        bad.limits.max_text_tokens = 513;
        assert!(bad.validate().unwrap_err().to_string().contains("exceeds text.bert.max_positions"));
        let mut bad = c;
        bad.text.encoder = "lstm".into();
        assert!(bad.validate().unwrap_err().to_string().contains("expected textcnn or bert"));
    }

    #[test]
    fn pooling_rows_and_normalisation() {
        assert_eq!(Pooling::Mean.weights(4), vec![0.25; 4]);
        assert_eq!(Pooling::Cls.weights(3), vec![1.0, 0.0, 0.0]);
        assert_eq!(Pooling::MeanSqrtLen.weights(4), vec![0.5; 4]);
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut z = vec![0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }
}
