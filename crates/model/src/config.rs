//! The model configuration (`config.toml` of a model directory): widths, depths, input limits
//! and the task heads, with the built-in presets and the checks that make a config usable.
//! Unknown keys are errors, so a misspelt option never goes unnoticed.

use serde::{Deserialize, Serialize};

use crate::bert::BertConfig;
use crate::error::{Error, Result};

/// Size of the built-in byte-level vocabulary: 256 bytes, then BOS/CLS, EOS, PAD.
pub const BYTE_VOCAB: usize = 259;
/// `[CLS]` / `[BOS]` id of the byte vocabulary.
pub const BOS: i32 = 256;
/// `[EOS]` id of the byte vocabulary.
pub const EOS: i32 = 257;
/// Number of modality ids (text, image, audio, video).
pub const MODALITIES: usize = 4;
/// Mel bins of the audio front end.
pub const MELS: usize = 80;

/// A whole model configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name, width and seed.
    pub model: ModelSection,
    /// Input limits, enforced with clear errors.
    pub limits: Limits,
    /// The text encoder.
    pub text: TextConfig,
    /// The image encoder (also the per-frame video encoder).
    pub image: ImageConfig,
    /// The audio encoder.
    pub audio: AudioConfig,
    /// The video encoder's own parts.
    pub video: VideoConfig,
    /// The cross-modal fusion transformer.
    pub fusion: FusionConfig,
    /// Task heads, in the order they report.
    pub heads: Vec<HeadConfig>,
    /// Per-layer precision overrides.
    #[serde(default, skip_serializing_if = "QuantConfig::is_default")]
    pub quant: QuantConfig,
}

/// `[quant]`: which layers stay in higher precision when the model runs (or is saved) in
/// INT8. Layer norms, softmax, embeddings, convolutions and residual sums always stay f32.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantConfig {
    /// Weight-name prefixes kept in f32 (e.g. `"heads.caption.lm"`, `"image.patch"`).
    #[serde(default)]
    pub keep_fp32: Vec<String>,
    /// How `Linear` inputs are quantised: `"dynamic"` (per token at run time, the default) or
    /// `"static-minmax"`, `"static-percentile"`, `"static-entropy"` (one calibrated step per
    /// layer, stored as `<weight>_input_scale`).
    #[serde(default = "dynamic", skip_serializing_if = "is_dynamic")]
    pub activations: String,
    /// The SmoothQuant migration strength α the weights were smoothed with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smooth: Option<f32>,
}

fn dynamic() -> String {
    "dynamic".into()
}

fn is_dynamic(s: &str) -> bool {
    s == "dynamic"
}

impl Default for QuantConfig {
    fn default() -> Self {
        QuantConfig { keep_fp32: Vec::new(), activations: dynamic(), smooth: None }
    }
}

impl QuantConfig {
    fn is_default(&self) -> bool {
        *self == QuantConfig::default()
    }
}

/// `[model]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Model name, reported with every result.
    pub name: String,
    /// Unified width D every encoder projects into.
    pub width: usize,
    /// Layer-norm epsilon, used by every layer norm.
    pub eps: f32,
    /// Seed of generated weights.
    pub seed: u64,
}

/// `[limits]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most text tokens per input, `[CLS]` included.
    pub max_text_tokens: usize,
    /// Most pixels (width × height) of a decoded image or video frame.
    pub max_pixels: u64,
    /// Longest audio input, in seconds.
    pub max_audio_seconds: f32,
    /// Most frames a video input may hold before sampling.
    pub max_video_frames: usize,
    /// Most inputs per request.
    pub max_inputs: usize,
}

/// `[text]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// Encoder kind: `textcnn`, or `bert` (a pretrained BERT, `[text.bert]`).
    pub encoder: String,
    /// Vocabulary size (259 for the built-in byte vocabulary; the BERT's for `bert`).
    pub vocab: usize,
    /// Embedding width E (TextCNN).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub embed: usize,
    /// Convolution widths, one branch each (TextCNN).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub widths: Vec<usize>,
    /// Output channels C of each branch (TextCNN).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub channels: usize,
    /// The BERT encoder's hyperparameters, for `encoder = "bert"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bert: Option<BertConfig>,
}

/// `[image]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    /// Side S of the square the image is brought to.
    pub size: usize,
    /// Patch side P (divides S).
    pub patch: usize,
    /// ViT width Wi.
    pub width: usize,
    /// ViT blocks.
    pub layers: usize,
    /// ViT heads.
    pub heads: usize,
    /// MLP hidden width as a multiple of Wi.
    pub mlp_ratio: usize,
    /// Per-channel mean subtracted after scaling to `[0, 1]`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by.
    pub std: [f32; 3],
    /// Resize policy: `crop` (shorter side to S, centre crop) or `pad` (longer side to S, pad).
    pub policy: ResizePolicy,
}

/// How an image that is not `S×S` is brought to `S×S`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizePolicy {
    /// Shorter side to S, then the centred S×S window.
    Crop,
    /// Longer side to S, then zero padding at the bottom and right.
    Pad,
}

/// `[audio]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioConfig {
    /// Sample rate the encoder expects (16 000).
    pub sample_rate: u32,
    /// Encoder width Wa.
    pub width: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Heads.
    pub heads: usize,
    /// MLP hidden width as a multiple of Wa.
    pub mlp_ratio: usize,
    /// Rows of the learned position table (frames after the stride-2 subsampling).
    pub max_positions: usize,
}

/// `[video]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoConfig {
    /// Frames sampled per video, evenly spaced.
    pub frames: usize,
}

/// `[fusion]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FusionConfig {
    /// Transformer blocks.
    pub layers: usize,
    /// Heads.
    pub heads: usize,
    /// MLP hidden width as a multiple of D.
    pub mlp_ratio: usize,
    /// Learned per-(query modality, key modality) attention bias.
    pub pair_bias: bool,
    /// Rows of the position-within-modality table: the most tokens one input may give.
    pub max_positions: usize,
}

/// One `[[heads]]` entry. (Unknown keys are refused by [`HeadKind`]: serde cannot deny them
/// on a struct with a flattened field.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    /// Name the head answers under (and prefix of its weights).
    pub name: String,
    /// What it does.
    #[serde(flatten)]
    pub kind: HeadKind,
}

/// The task a head performs, with its own settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum HeadKind {
    /// Pooled fused sequence → linear → softmax over labels.
    Classification {
        /// Class labels, in output order.
        labels: Vec<String>,
        /// `mean` of all tokens or the first token (`cls`).
        pool: Pool,
    },
    /// L2-normalised embeddings of each input and of the whole request.
    Retrieval {
        /// Embedding width.
        dim: usize,
    },
    /// Autoregressive byte-level decoder with cross-attention to the fused sequence.
    Generation {
        /// Decoder blocks.
        layers: usize,
        /// Heads of self- and cross-attention.
        heads: usize,
        /// MLP hidden width as a multiple of D.
        mlp_ratio: usize,
        /// Default most generated tokens.
        max_tokens: usize,
        /// Rows of the decoder's position table (bounds `max_tokens`).
        max_positions: usize,
    },
}

/// Pooling of the classification head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    /// Mean of all fused tokens.
    Mean,
    /// The first fused token.
    Cls,
}

impl HeadKind {
    /// The kind's name, as `--task` accepts it.
    pub fn name(&self) -> &'static str {
        match self {
            HeadKind::Classification { .. } => "classification",
            HeadKind::Retrieval { .. } => "retrieval",
            HeadKind::Generation { .. } => "generation",
        }
    }
}

impl Config {
    /// The built-in `omni-small` preset: D = 256, four fusion blocks, a sentiment classifier, a
    /// retrieval head and a caption generator.
    pub fn omni_small() -> Config {
        Config {
            model: ModelSection { name: "omni-small".into(), width: 256, eps: 1e-5, seed: 20_261_128 },
            limits: Limits {
                max_text_tokens: 512,
                max_pixels: 40_000_000,
                max_audio_seconds: 30.0,
                max_video_frames: 100_000,
                max_inputs: 64,
            },
            text: TextConfig {
                encoder: "textcnn".into(),
                vocab: BYTE_VOCAB,
                embed: 128,
                widths: vec![3, 5, 7],
                channels: 128,
                bert: None,
            },
            image: ImageConfig {
                size: 224,
                patch: 16,
                width: 192,
                layers: 2,
                heads: 3,
                mlp_ratio: 4,
                mean: [0.5; 3],
                std: [0.5; 3],
                policy: ResizePolicy::Crop,
            },
            audio: AudioConfig {
                sample_rate: 16_000,
                width: 192,
                layers: 2,
                heads: 3,
                mlp_ratio: 4,
                max_positions: 1500,
            },
            video: VideoConfig { frames: 8 },
            fusion: FusionConfig { layers: 4, heads: 4, mlp_ratio: 4, pair_bias: true, max_positions: 1500 },
            heads: vec![
                HeadConfig {
                    name: "sentiment".into(),
                    kind: HeadKind::Classification {
                        labels: vec!["negative".into(), "neutral".into(), "positive".into()],
                        pool: Pool::Mean,
                    },
                },
                HeadConfig { name: "retrieval".into(), kind: HeadKind::Retrieval { dim: 128 } },
                HeadConfig {
                    name: "caption".into(),
                    kind: HeadKind::Generation {
                        layers: 2,
                        heads: 4,
                        mlp_ratio: 4,
                        max_tokens: 32,
                        max_positions: 128,
                    },
                },
            ],
            // The task heads' projections stay f32 under INT8, the usual recipe for a network's
            // last layers: they are 0.3% of the weights, and their outputs are the answers.
            quant: QuantConfig {
                keep_fp32: vec!["heads.sentiment".into(), "heads.retrieval".into()],
                ..QuantConfig::default()
            },
        }
    }

    /// The built-in `omni-base` preset: twice the width and depth of `omni-small`.
    pub fn omni_base() -> Config {
        let mut c = Config::omni_small();
        c.model.name = "omni-base".into();
        c.model.width = 512;
        c.text.embed = 256;
        c.text.channels = 256;
        c.image.width = 384;
        c.image.layers = 6;
        c.image.heads = 6;
        c.audio.width = 384;
        c.audio.layers = 4;
        c.audio.heads = 6;
        c.fusion.layers = 8;
        c.fusion.heads = 8;
        for h in &mut c.heads {
            if let HeadKind::Generation { layers, heads, .. } = &mut h.kind {
                *layers = 4;
                *heads = 8;
            }
        }
        c
    }

    /// A preset by name.
    pub fn preset(name: &str) -> Result<Config> {
        match name {
            "omni-small" => Ok(Config::omni_small()),
            "omni-base" => Ok(Config::omni_base()),
            other => Err(Error::Config(format!("unknown preset '{other}': expected omni-small or omni-base"))),
        }
    }

    /// Parse and validate a TOML text.
    pub fn from_toml(text: &str) -> Result<Config> {
        let c: Config = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// The TOML text of this config.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::Config(e.to_string()))
    }

    /// Tokens one image gives: its patches and the CLS token.
    pub fn image_tokens(&self) -> usize {
        let side = self.image.size / self.image.patch.max(1);
        side * side + 1
    }

    /// The head called `name`.
    pub fn head(&self, name: &str) -> Option<&HeadConfig> {
        self.heads.iter().find(|h| h.name == name)
    }

    /// Check every constraint the model relies on; the error names the first that fails.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        let d = self.model.width;
        let pos = |what: &str, v: usize| {
            if v == 0 { Err(Error::Config(format!("{what} must be positive, got 0"))) } else { Ok(()) }
        };
        pos("model.width", d)?;
        const ACTIVATIONS: [&str; 4] = ["dynamic", "static-minmax", "static-percentile", "static-entropy"];
        if !ACTIVATIONS.contains(&self.quant.activations.as_str()) {
            return bad(format!(
                "quant.activations '{}': expected one of {}",
                self.quant.activations,
                ACTIVATIONS.join(", ")
            ));
        }
        if !(self.model.eps > 0.0 && self.model.eps.is_finite()) {
            return bad(format!("model.eps must be positive and finite, got {}", self.model.eps));
        }
        pos("text.vocab", self.text.vocab)?;
        match (self.text.encoder.as_str(), &self.text.bert) {
            ("textcnn", _) => {
                pos("text.embed", self.text.embed)?;
                pos("text.channels", self.text.channels)?;
                if self.text.widths.is_empty() || self.text.widths.contains(&0) {
                    return bad(format!("text.widths must be non-empty positive widths, got {:?}", self.text.widths));
                }
            }
            ("bert", Some(b)) => {
                b.validate()?;
                if b.vocab != self.text.vocab {
                    return bad(format!("text.vocab {} differs from text.bert.vocab {}", self.text.vocab, b.vocab));
                }
                if self.limits.max_text_tokens > b.max_positions {
                    return bad(format!(
                        "limits.max_text_tokens {} exceeds text.bert.max_positions {}",
                        self.limits.max_text_tokens, b.max_positions
                    ));
                }
            }
            ("bert", None) => return bad("text.encoder is 'bert' but there is no [text.bert] section".into()),
            (other, _) => return bad(format!("text.encoder '{other}' is not known: expected textcnn or bert")),
        }
        let im = &self.image;
        pos("image.patch", im.patch)?;
        if im.size == 0 || !im.size.is_multiple_of(im.patch) {
            return bad(format!("image.size {} must be a positive multiple of image.patch {}", im.size, im.patch));
        }
        if im.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return bad(format!("image.std must be positive, got {:?}", im.std));
        }
        heads_divide("image", im.width, im.heads)?;
        pos("image.mlp_ratio", im.mlp_ratio)?;
        let au = &self.audio;
        if au.sample_rate < 8000 {
            return bad(format!("audio.sample_rate must be at least 8000 Hz, got {}", au.sample_rate));
        }
        heads_divide("audio", au.width, au.heads)?;
        pos("audio.mlp_ratio", au.mlp_ratio)?;
        let frames = self.max_audio_frames();
        if au.max_positions < frames.div_ceil(2) {
            return bad(format!(
                "audio.max_positions {} is below the {} positions that limits.max_audio_seconds = {} needs",
                au.max_positions,
                frames.div_ceil(2),
                self.limits.max_audio_seconds
            ));
        }
        pos("video.frames", self.video.frames)?;
        let f = &self.fusion;
        heads_divide("fusion", d, f.heads)?;
        pos("fusion.mlp_ratio", f.mlp_ratio)?;
        let longest = self.limits.max_text_tokens.max(self.image_tokens()).max(au.max_positions).max(self.video.frames);
        if f.max_positions < longest {
            return bad(format!(
                "fusion.max_positions {} is below {longest}, the most tokens one input may give",
                f.max_positions
            ));
        }
        let l = &self.limits;
        pos("limits.max_text_tokens", l.max_text_tokens)?;
        pos("limits.max_inputs", l.max_inputs)?;
        pos("limits.max_video_frames", l.max_video_frames)?;
        if l.max_pixels == 0 || !(l.max_audio_seconds > 0.0 && l.max_audio_seconds.is_finite()) {
            return bad("limits.max_pixels and limits.max_audio_seconds must be positive".into());
        }
        if self.heads.is_empty() {
            return bad("at least one [[heads]] entry is needed".into());
        }
        for (i, h) in self.heads.iter().enumerate() {
            if h.name.is_empty() || !h.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return bad(format!("head {i}: name '{}' must be non-empty ASCII letters, digits, '_' or '-'", h.name));
            }
            if self.heads[..i].iter().any(|o| o.name == h.name) {
                return bad(format!("two heads are named '{}'", h.name));
            }
            match &h.kind {
                HeadKind::Classification { labels, .. } if labels.is_empty() => {
                    return bad(format!("head '{}': labels must not be empty", h.name));
                }
                HeadKind::Retrieval { dim } => pos(&format!("head '{}' dim", h.name), *dim)?,
                HeadKind::Generation { heads, mlp_ratio, max_tokens, max_positions, .. } => {
                    heads_divide(&format!("head '{}'", h.name), d, *heads)?;
                    pos(&format!("head '{}' mlp_ratio", h.name), *mlp_ratio)?;
                    if *max_positions < max_tokens + 1 {
                        return bad(format!(
                            "head '{}': max_positions {max_positions} must exceed max_tokens {max_tokens}",
                            h.name
                        ));
                    }
                }
                HeadKind::Classification { .. } => {}
            }
        }
        Ok(())
    }

    /// Log-mel frames of the longest allowed audio input.
    pub fn max_audio_frames(&self) -> usize {
        let samples = (self.limits.max_audio_seconds as f64 * self.audio.sample_rate as f64).ceil() as usize;
        if samples <= 400 { 1 } else { 1 + (samples - 400) / 160 }
    }
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn heads_divide(what: &str, width: usize, heads: usize) -> Result<()> {
    if width == 0 || heads == 0 || !width.is_multiple_of(heads) {
        return Err(Error::Config(format!("{what}: width {width} must be a positive multiple of heads {heads}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_round_trip_through_toml() {
        for c in [Config::omni_small(), Config::omni_base()] {
            c.validate().unwrap();
            let text = c.to_toml().unwrap();
            assert_eq!(Config::from_toml(&text).unwrap(), c);
        }
    }

    #[test]
    fn unknown_keys_and_broken_constraints_are_named() {
        let text = Config::omni_small().to_toml().unwrap();
        let typo = text.replacen("width = 256", "widht = 256", 1);
        assert!(Config::from_toml(&typo).unwrap_err().to_string().contains("widht"));
        let typo = text.replacen("labels =", "lables =", 1);
        assert!(Config::from_toml(&typo).unwrap_err().to_string().contains("lables"));
        let unknown = text.replacen("kind = \"retrieval\"", "kind = \"regression\"", 1);
        assert_ne!(unknown, text);
        assert!(Config::from_toml(&unknown).unwrap_err().to_string().contains("regression"));
        let mut c = Config::omni_small();
        c.image.patch = 15;
        assert!(c.validate().unwrap_err().to_string().contains("image.patch 15"));
        let mut c = Config::omni_small();
        c.fusion.heads = 3;
        assert!(c.validate().unwrap_err().to_string().contains("heads 3"));
        let mut c = Config::omni_small();
        c.heads.push(c.heads[0].clone());
        assert!(c.validate().unwrap_err().to_string().contains("two heads"));
    }
}
