//! The model's weights: the list of every tensor a config implies (name, shape, how it is
//! initialised), seeded generation for the built-in presets, and `model.safetensors` loading
//! (memory-mapped, every tensor checked against the list) and saving.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use omnifuse_core::quant::quantize_matrix;
use omnifuse_core::{DType, HostTensor, TensorDesc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use safetensors::{Dtype as StDtype, SafeTensors, View};

use crate::config::{Config, HeadKind, MELS, MODALITIES};
use crate::error::{Error, Result};

/// How a generated tensor is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// `N(0, σ²)`.
    Normal(f32),
    /// `1 + N(0, σ²)` (layer-norm scales).
    Scale(f32),
}

/// One tensor the config implies.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightSpec {
    /// Its name in `model.safetensors`.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// How generated weights draw it.
    pub init: Init,
    /// A `Linear` weight `[out, in]` (what INT8 precision quantises per output channel).
    pub linear: bool,
}

const STD: f32 = 0.02;

/// Prefix of the BERT text encoder's tensors (`text.encoder = "bert"`): HF names follow it.
pub const TEXT_BERT: &str = "text.bert.";

struct SpecList(Vec<WeightSpec>);

impl SpecList {
    fn push(&mut self, name: String, shape: &[usize], init: Init) {
        self.0.push(WeightSpec { name, shape: shape.to_vec(), init, linear: false });
    }
    fn normal(&mut self, name: String, shape: &[usize]) {
        self.push(name, shape, Init::Normal(STD));
    }
    fn linear(&mut self, p: &str, out: usize, inp: usize, bias: bool) {
        self.0.push(WeightSpec {
            name: format!("{p}.weight"),
            shape: vec![out, inp],
            init: Init::Normal(STD),
            linear: true,
        });
        if bias {
            self.normal(format!("{p}.bias"), &[out]);
        }
    }
    fn layer_norm(&mut self, p: &str, w: usize) {
        self.push(format!("{p}.weight"), &[w], Init::Scale(STD));
        self.normal(format!("{p}.bias"), &[w]);
    }
    fn mlp(&mut self, p: &str, w: usize, ratio: usize) {
        self.linear(&format!("{p}.mlp.fc1"), ratio * w, w, true);
        self.linear(&format!("{p}.mlp.fc2"), w, ratio * w, true);
    }
    fn block(&mut self, p: &str, w: usize, ratio: usize) {
        self.layer_norm(&format!("{p}.ln1"), w);
        self.linear(&format!("{p}.attn.qkv"), 3 * w, w, true);
        self.linear(&format!("{p}.attn.out"), w, w, true);
        self.layer_norm(&format!("{p}.ln2"), w);
        self.mlp(p, w, ratio);
    }
    fn decoder_block(&mut self, p: &str, d: usize, ratio: usize) {
        self.layer_norm(&format!("{p}.ln1"), d);
        self.linear(&format!("{p}.self.qkv"), 3 * d, d, true);
        self.linear(&format!("{p}.self.out"), d, d, true);
        self.layer_norm(&format!("{p}.ln2"), d);
        self.linear(&format!("{p}.cross.q"), d, d, true);
        self.linear(&format!("{p}.cross.kv"), 2 * d, d, true);
        self.linear(&format!("{p}.cross.out"), d, d, true);
        self.layer_norm(&format!("{p}.ln3"), d);
        self.mlp(p, d, ratio);
    }
}

/// Every tensor `config` implies, sorted by name.
pub fn spec(config: &Config) -> Vec<WeightSpec> {
    let d = config.model.width;
    let mut s = SpecList(Vec::new());
    let t = &config.text;
    match &t.bert {
        Some(bert) if t.encoder == "bert" => {
            for (name, shape) in bert.spec() {
                let init = if name.ends_with("LayerNorm.weight") { Init::Scale(STD) } else { Init::Normal(STD) };
                let linear = crate::bert::is_linear_weight(&name, &shape);
                s.0.push(WeightSpec { name: format!("{TEXT_BERT}{name}"), shape, init, linear });
            }
            s.linear("text.proj", d, bert.width, true);
        }
        _ => {
            // Unit-variance embeddings and fan-in convolutions: at 0.02 for both, as elsewhere,
            // text tokens came out near 1e-3, a tenth of the fusion's position and modality
            // embeddings, and every text pooled to almost the same row.
            s.push("text.embed".into(), &[t.vocab, t.embed], Init::Normal(1.0));
            for (i, &w) in t.widths.iter().enumerate() {
                let fan_in = (w * t.embed).max(1) as f32;
                s.push(format!("text.conv.{i}.weight"), &[w, t.embed, t.channels], Init::Normal(fan_in.sqrt().recip()));
                s.normal(format!("text.conv.{i}.bias"), &[t.channels]);
            }
            s.linear("text.proj", d, t.channels * t.widths.len(), true);
        }
    }
    let im = &config.image;
    s.linear("image.patch", im.width, im.patch * im.patch * 3, true);
    s.normal("image.cls".into(), &[im.width]);
    s.normal("image.pos".into(), &[config.image_tokens(), im.width]);
    for l in 0..im.layers {
        s.block(&format!("image.blocks.{l}"), im.width, im.mlp_ratio);
    }
    s.layer_norm("image.ln", im.width);
    s.linear("image.proj", d, im.width, true);
    let au = &config.audio;
    s.normal("audio.conv1.weight".into(), &[3, MELS, au.width]);
    s.normal("audio.conv1.bias".into(), &[au.width]);
    s.normal("audio.conv2.weight".into(), &[3, au.width, au.width]);
    s.normal("audio.conv2.bias".into(), &[au.width]);
    s.normal("audio.pos".into(), &[au.max_positions, au.width]);
    for l in 0..au.layers {
        s.block(&format!("audio.blocks.{l}"), au.width, au.mlp_ratio);
    }
    s.layer_norm("audio.ln", au.width);
    s.linear("audio.proj", d, au.width, true);
    s.normal("video.time".into(), &[config.video.frames, im.width]);
    s.linear("video.proj", d, im.width, true);
    let f = &config.fusion;
    s.normal("fusion.modality".into(), &[MODALITIES, d]);
    s.normal("fusion.pos".into(), &[f.max_positions, d]);
    if f.pair_bias {
        s.push("fusion.pair_bias".into(), &[f.heads, MODALITIES, MODALITIES], Init::Normal(0.5));
    }
    for l in 0..f.layers {
        s.block(&format!("fusion.blocks.{l}"), d, f.mlp_ratio);
    }
    s.layer_norm("fusion.ln", d);
    for h in &config.heads {
        let p = format!("heads.{}", h.name);
        match &h.kind {
            HeadKind::Classification { labels, .. } => s.linear(&p, labels.len(), d, true),
            HeadKind::Retrieval { dim } => s.linear(&p, *dim, d, false),
            HeadKind::Generation { layers, mlp_ratio, max_positions, .. } => {
                s.normal(format!("{p}.embed"), &[crate::config::BYTE_VOCAB, d]);
                s.normal(format!("{p}.pos"), &[*max_positions, d]);
                for l in 0..*layers {
                    s.decoder_block(&format!("{p}.blocks.{l}"), d, *mlp_ratio);
                }
                s.layer_norm(&format!("{p}.ln"), d);
                s.linear(&format!("{p}.lm"), crate::config::BYTE_VOCAB, d, true);
            }
        }
    }
    let mut v = s.0;
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// The `omni-small` preset's fitted heads: its sentiment head is a linear probe trained on the
/// built-in labelled set (see `presets/README.md` beside this crate for the command that
/// writes the file), so its answers rest on class margins rather than on the chance
/// directions of a random head.
const OMNI_SMALL_HEADS: &[u8] = include_bytes!("../presets/omni-small.heads.safetensors");

/// The fitted heads for `config`, when it is a built-in preset that has them: exactly
/// `omni-small` (its `[quant]` section aside, which does not change f32 weights).
fn fitted_heads(config: &Config) -> Option<&'static [u8]> {
    let preset = Config::omni_small();
    let mut plain = config.clone();
    plain.quant = preset.quant.clone();
    (plain == preset).then_some(OMNI_SMALL_HEADS)
}

/// A model's weights in host memory, by name.
#[derive(Clone, Debug, Default)]
pub struct Weights {
    tensors: BTreeMap<String, HostTensor>,
}

impl Weights {
    /// Deterministic weights for `config`: ChaCha8 seeded by `model.seed`, tensors drawn in
    /// sorted name order.
    pub fn generate(config: &Config) -> Result<Weights> {
        let mut rng = ChaCha8Rng::seed_from_u64(config.model.seed);
        let mut tensors = BTreeMap::new();
        for w in spec(config) {
            let n: usize = w.shape.iter().product();
            let values: Vec<f32> = (0..n)
                .map(|_| {
                    let z: f32 = StandardNormal.sample(&mut rng);
                    match w.init {
                        Init::Normal(s) => s * z,
                        Init::Scale(s) => 1.0 + s * z,
                    }
                })
                .collect();
            tensors.insert(w.name, HostTensor::from_slice(w.shape.as_slice(), &values)?);
        }
        let mut weights = Weights { tensors };
        if let Some(bytes) = fitted_heads(config) {
            weights.apply_fitted(bytes)?;
        }
        Ok(weights)
    }

    /// Replace tensors by those of a safetensors file of fitted heads (f32, same shapes).
    fn apply_fitted(&mut self, bytes: &[u8]) -> Result<()> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::Weights(format!("fitted heads: {e}")))?;
        for (name, view) in st.tensors() {
            if view.dtype() != StDtype::F32 {
                return Err(Error::Weights(format!("fitted head tensor '{name}' is {:?}, expected F32", view.dtype())));
            }
            let t = HostTensor::from_bytes(TensorDesc::new(view.shape(), DType::F32), view.data().to_vec())?;
            self.replace(&name, t)?;
        }
        Ok(())
    }

    /// Read `path` (memory-mapped) and check it holds exactly the tensors `config` implies.
    pub fn load(path: &Path, config: &Config) -> Result<Weights> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        // SAFETY: the map is read-only and lives only within this function; every tensor is
        // copied out before it is dropped. A file changed underneath by another process could
        // change the bytes read, not memory safety of this process's other data.
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(format!("mapping {}", path.display()), e))?;
        Weights::from_safetensors(&map, config).map_err(|e| match e {
            Error::Weights(m) => Error::Weights(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parse safetensors bytes and check them against `config`.
    pub fn from_safetensors(bytes: &[u8], config: &Config) -> Result<Weights> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::Weights(format!("not a safetensors file: {e}")))?;
        let expected = spec(config);
        let mut tensors = BTreeMap::new();
        for w in &expected {
            let view = st
                .tensor(&w.name)
                .map_err(|_| Error::Weights(format!("tensor '{}' {:?} is missing", w.name, w.shape)))?;
            if w.shape.len() >= 2 && view.dtype() == StDtype::I8 {
                // An INT8 model: the weight quantised per output channel (per row of the last
                // axis for tables and convolutions), with its steps.
                let (q, steps) = read_quantised(&st, w)?;
                tensors.insert(w.name.clone(), q);
                tensors.insert(scale_name(&w.name), steps);
                let input = input_scale_name(&w.name);
                if w.linear
                    && let Ok(v) = st.tensor(&input)
                {
                    if v.dtype() != StDtype::F32 || v.shape() != [1] {
                        return Err(Error::Weights(format!(
                            "tensor '{input}' is {:?} {:?}, expected F32 [1]",
                            v.dtype(),
                            v.shape()
                        )));
                    }
                    let t = HostTensor::from_bytes(TensorDesc::new([1], DType::F32), v.data().to_vec())?;
                    let step = t.to_f32()[0];
                    if !(step > 0.0 && step.is_finite()) {
                        return Err(Error::Weights(format!("tensor '{input}' is {step}, expected a positive step")));
                    }
                    tensors.insert(input, t);
                }
                continue;
            }
            if view.dtype() != StDtype::F32 {
                let what = if w.shape.len() >= 2 { "F32 (or I8 with its _scale)" } else { "F32" };
                return Err(Error::Weights(format!("tensor '{}' is {:?}, expected {what}", w.name, view.dtype())));
            }
            check_shape(w, view.shape())?;
            let desc = TensorDesc::new(w.shape.as_slice(), DType::F32);
            tensors.insert(w.name.clone(), HostTensor::from_bytes(desc, view.data().to_vec())?);
        }
        if st.len() != tensors.len() {
            let mut extra: Vec<&str> = st.names().into_iter().filter(|n| !tensors.contains_key(*n)).collect();
            extra.sort_unstable();
            return Err(Error::Weights(format!(
                "{} tensor(s) the config does not use: {}",
                extra.len(),
                extra.iter().take(8).copied().collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(Weights { tensors })
    }

    /// Write all tensors to `path` as safetensors (f32, and i8 for quantised weights).
    pub fn save(&self, path: &Path) -> Result<()> {
        let views: Vec<(&str, F32View<'_>)> = self.tensors.iter().map(|(n, t)| (n.as_str(), F32View(t))).collect();
        safetensors::serialize_to_file(views, None, path)
            .map_err(|e| Error::Weights(format!("writing {}: {e}", path.display())))
    }

    /// Replace the tensor called `name` with `t` of the same shape and dtype (e.g. pretrained
    /// weights over generated ones).
    pub fn replace(&mut self, name: &str, t: HostTensor) -> Result<()> {
        let old =
            self.tensors.get_mut(name).ok_or_else(|| Error::Weights(format!("tensor '{name}' is not in the model")))?;
        if old.desc != t.desc {
            return Err(Error::Weights(format!("tensor '{name}' is {}, the replacement is {}", old.desc, t.desc)));
        }
        *old = t;
        Ok(())
    }

    /// A copy holding only the tensors named in `names` (each must exist), e.g. one head's to
    /// write on its own.
    pub fn subset(&self, names: &[String]) -> Result<Weights> {
        let mut tensors = BTreeMap::new();
        for n in names {
            tensors.insert(n.clone(), self.get(n)?.clone());
        }
        Ok(Weights { tensors })
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Result<&HostTensor> {
        self.tensors.get(name).ok_or_else(|| Error::Weights(format!("tensor '{name}' is missing")))
    }

    /// All tensors by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &HostTensor)> {
        self.tensors.iter()
    }

    /// Number of parameters (a quantised weight's steps are not counted).
    pub fn parameters(&self) -> usize {
        self.tensors.iter().filter(|(n, _)| !n.ends_with(SCALE_SUFFIX)).map(|(_, t)| t.desc.numel()).sum()
    }

    /// Bytes of all tensors.
    pub fn bytes(&self) -> usize {
        self.tensors.values().map(|t| t.bytes().len()).sum()
    }

    /// Quantise every f32 tensor of rank ≥ 2 in `specs` to INT8, except those whose name
    /// starts with one of `keep`: symmetric, one step `max|row| / 127` per row of the last
    /// axis (per output channel for a `Linear` weight `[out, in]`), stored with its steps as
    /// `<name>_scale`. `Linear` weights then compute in INT8; the other tensors (embedding
    /// tables, positions, convolutions) are only stored in INT8 and widened back to f32 when
    /// they load. Returns how many `Linear` weights were quantised.
    pub fn quantize_int8(&mut self, specs: &[WeightSpec], keep: &[String]) -> Result<usize> {
        let mut count = 0;
        for w in specs.iter().filter(|w| w.shape.len() >= 2) {
            if keep.iter().any(|k| w.name.starts_with(k.as_str())) {
                continue;
            }
            let Some(t) = self.tensors.get(&w.name) else { continue };
            if t.desc.dtype != DType::F32 {
                continue;
            }
            let k = *t.desc.shape.dims().last().unwrap_or(&1);
            let (q, steps) = quantize_matrix(&t.to_f32(), k);
            let q = HostTensor::from_slice(t.desc.shape.dims(), &q)?;
            let steps = HostTensor::from_slice([steps.len()], &steps)?;
            self.tensors.insert(w.name.clone(), q);
            self.tensors.insert(scale_name(&w.name), steps);
            count += usize::from(w.linear);
        }
        Ok(count)
    }

    /// The static input steps of quantised `Linear` weights, by weight name.
    pub fn input_steps(&self) -> HashMap<String, f32> {
        self.tensors
            .iter()
            .filter_map(|(n, t)| Some((n.strip_suffix(INPUT_SCALE_SUFFIX)?.to_string(), *t.to_f32().first()?)))
            .collect()
    }

    /// Store a static input step for the quantised `Linear` weight `name`.
    pub fn set_input_step(&mut self, name: &str, step: f32) -> Result<()> {
        match self.tensors.get(name) {
            Some(t) if t.desc.dtype == DType::I8 => {}
            Some(_) => return Err(Error::Weights(format!("'{name}' is not INT8: it has no input step"))),
            None => return Err(Error::Weights(format!("tensor '{name}' is not in the model"))),
        }
        if !(step > 0.0 && step.is_finite()) {
            return Err(Error::Weights(format!("input step {step} of '{name}': expected a positive finite step")));
        }
        self.tensors.insert(input_scale_name(name), HostTensor::from_slice([1], &[step])?);
        Ok(())
    }

    /// Rewrite the f32 values of tensor `name` with `f` (given its shape), keeping its shape.
    pub fn map_f32(&mut self, name: &str, f: impl FnOnce(&[usize], &mut [f32])) -> Result<()> {
        let t = self.tensors.get_mut(name).ok_or_else(|| Error::Weights(format!("tensor '{name}' is missing")))?;
        if t.desc.dtype != DType::F32 {
            return Err(Error::Weights(format!("tensor '{name}' is {}, expected f32", t.desc.dtype)));
        }
        let dims = t.desc.shape.dims().to_vec();
        let mut v = t.to_f32();
        f(&dims, &mut v);
        *t = HostTensor::from_slice(dims.as_slice(), &v)?;
        Ok(())
    }

    /// The tensors as a model computes with them: `Linear` weights as stored (f32, or INT8
    /// with their steps), every other INT8 tensor widened back to f32 (`q · step` per row)
    /// and its steps dropped.
    pub fn for_compute(&self, specs: &[WeightSpec]) -> Result<Vec<(String, HostTensor)>> {
        let linear: std::collections::HashSet<&str> =
            specs.iter().filter(|w| w.linear).map(|w| w.name.as_str()).collect();
        let mut out = Vec::with_capacity(self.tensors.len());
        for (name, t) in &self.tensors {
            if t.desc.dtype == DType::I8 && !linear.contains(name.as_str()) {
                let steps = self.get(&scale_name(name))?.to_f32();
                let q = t.to_f32();
                let k = q.len() / steps.len().max(1);
                let v: Vec<f32> = q.iter().enumerate().map(|(i, &x)| x * steps[i / k.max(1)]).collect();
                out.push((name.clone(), HostTensor::from_slice(t.desc.shape.dims(), &v)?));
            } else if let Some(base) = name.strip_suffix(SCALE_SUFFIX)
                && !linear.contains(base)
                && self.tensors.contains_key(base)
            {
                continue;
            } else {
                out.push((name.clone(), t.clone()));
            }
        }
        Ok(out)
    }
}

/// Suffix of a quantised weight's per-channel steps.
pub const SCALE_SUFFIX: &str = "_scale";

/// Suffix of the static per-tensor input step of a quantised `Linear` weight.
pub const INPUT_SCALE_SUFFIX: &str = "_input_scale";

/// The name of the static input step (f32 `[1]`) of quantised `Linear` weight `name`.
pub fn input_scale_name(name: &str) -> String {
    format!("{name}{INPUT_SCALE_SUFFIX}")
}

/// The name of the steps of quantised weight `name`.
pub fn scale_name(name: &str) -> String {
    format!("{name}{SCALE_SUFFIX}")
}

/// A stored tensor's shape must be the one the config implies.
fn check_shape(w: &WeightSpec, got: &[usize]) -> Result<()> {
    if got != w.shape.as_slice() {
        return Err(Error::Weights(format!("tensor '{}' has shape {got:?}, expected {:?}", w.name, w.shape)));
    }
    Ok(())
}

/// Read an INT8 weight and its steps, checking both shapes.
fn read_quantised(st: &SafeTensors, w: &WeightSpec) -> Result<(HostTensor, HostTensor)> {
    let view = st.tensor(&w.name).map_err(|_| Error::Weights(format!("tensor '{}' is missing", w.name)))?;
    check_shape(w, view.shape())?;
    let sname = scale_name(&w.name);
    let sv = st.tensor(&sname).map_err(|_| {
        Error::Weights(format!("tensor '{}' is I8 but its per-channel steps '{sname}' are missing", w.name))
    })?;
    let rows: usize = w.shape[..w.shape.len() - 1].iter().product();
    if sv.dtype() != StDtype::F32 || sv.shape() != [rows] {
        return Err(Error::Weights(format!(
            "tensor '{sname}' is {:?} {:?}, expected F32 [{rows}] (one step per row)",
            sv.dtype(),
            sv.shape(),
        )));
    }
    let steps = HostTensor::from_bytes(TensorDesc::new([rows], DType::F32), sv.data().to_vec())?;
    if let Some(bad) = steps.to_f32().iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(Error::Weights(format!("tensor '{sname}' holds the step {bad}, expected positive and finite")));
    }
    let q = HostTensor::from_bytes(TensorDesc::new(w.shape.as_slice(), DType::I8), view.data().to_vec())?;
    Ok((q, steps))
}

/// Serialisation view of an f32 host tensor (for `safetensors::serialize`).
pub(crate) struct F32View<'a>(pub(crate) &'a HostTensor);

impl View for F32View<'_> {
    fn dtype(&self) -> StDtype {
        if self.0.desc.dtype == DType::I8 { StDtype::I8 } else { StDtype::F32 }
    }
    fn shape(&self) -> &[usize] {
        self.0.desc.shape.dims()
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(self.0.bytes())
    }
    fn data_len(&self) -> usize {
        self.0.bytes().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_weights_round_trip_and_are_deterministic() {
        let c = Config::omni_small();
        let a = Weights::generate(&c).unwrap();
        let b = Weights::generate(&c).unwrap();
        assert_eq!(a.get("fusion.pair_bias").unwrap(), b.get("fusion.pair_bias").unwrap());
        assert_eq!(a.get("fusion.blocks.3.attn.qkv.weight").unwrap().desc.shape.dims(), &[768, 256]);
        let dir = std::env::temp_dir().join(format!("omnifuse-weights-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("model.safetensors");
        a.save(&p).unwrap();
        let back = Weights::load(&p, &c).unwrap();
        assert_eq!(back.parameters(), a.parameters());
        assert_eq!(back.get("text.embed").unwrap(), a.get("text.embed").unwrap());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_fitted_heads_apply_to_the_exact_preset_only() {
        let st = SafeTensors::deserialize(OMNI_SMALL_HEADS).unwrap();
        let fitted = st.tensor("heads.sentiment.weight").unwrap();
        let c = Config::omni_small();
        let w = Weights::generate(&c).unwrap();
        assert_eq!(w.get("heads.sentiment.weight").unwrap().bytes(), fitted.data());
        // The quant section does not matter; another seed or width is another model.
        let mut q = c.clone();
        q.quant.keep_fp32.clear();
        assert_eq!(Weights::generate(&q).unwrap().get("heads.sentiment.weight").unwrap().bytes(), fitted.data());
        let mut other = c.clone();
        other.model.seed += 1;
        assert_ne!(Weights::generate(&other).unwrap().get("heads.sentiment.weight").unwrap().bytes(), fitted.data());
        assert!(fitted_heads(&Config::omni_base()).is_none());
        // A file of any of the model's own tensors applies; one whose shapes differ from the
        // model's (omni-small's heads on omni-base) is refused.
        let mut w = Weights::generate(&other).unwrap();
        let retrieval = w.subset(&["heads.retrieval.weight".to_string()]).unwrap();
        let dir = std::env::temp_dir().join(format!("omnifuse-fitted-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("h.safetensors");
        retrieval.save(&p).unwrap();
        w.apply_fitted(&std::fs::read(&p).unwrap()).unwrap();
        let mut base = Weights::generate(&Config::omni_base()).unwrap();
        let e = base.apply_fitted(OMNI_SMALL_HEADS).unwrap_err().to_string();
        assert!(e.contains("heads.sentiment"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn wrong_shape_missing_and_extra_tensors_are_named() {
        let c = Config::omni_small();
        let w = Weights::generate(&c).unwrap();
        let mut small = c.clone();
        small.image.width = 96;
        small.image.heads = 2;
        let bytes = {
            let views: Vec<(&str, F32View<'_>)> = w.tensors.iter().map(|(n, t)| (n.as_str(), F32View(t))).collect();
            safetensors::serialize(views, None).unwrap()
        };
        let err = Weights::from_safetensors(&bytes, &small).unwrap_err().to_string();
        assert!(err.contains("expected [96"), "{err}");
        let mut fewer = c.clone();
        fewer.fusion.layers = 2;
        let err = Weights::from_safetensors(&bytes, &fewer).unwrap_err().to_string();
        assert!(err.contains("does not use") && err.contains("fusion.blocks.2"), "{err}");
        let mut more = c.clone();
        more.fusion.layers = 5;
        let err = Weights::from_safetensors(&bytes, &more).unwrap_err().to_string();
        assert!(err.contains("fusion.blocks.4") && err.contains("missing"), "{err}");
        assert!(Weights::from_safetensors(b"not safetensors", &c).is_err());
    }
}
