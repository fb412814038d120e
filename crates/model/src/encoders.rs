//! Layer 1 of the model: the light per-modality encoders (TextCNN, ViT, audio conv +
//! transformer, per-frame ViT for video), each ending in its projection into the unified
//! width D. Each builds graph ops on a [`Builder`]; MODEL.md gives the exact definitions.

use omnifuse_core::graph::ValueId;
use omnifuse_core::op::Activation;
use omnifuse_core::{HostTensor, Op};

use crate::bert;
use crate::builder::{Builder, host_f32};
use crate::config::{Config, MELS};
use crate::error::Result;
use crate::weights::TEXT_BERT;

/// The text encoder over token ids: `[L]` → `[L, D]` (TextCNN, or BERT when configured).
pub fn text(b: &mut Builder, cfg: &Config, ids: &[i32]) -> Result<ValueId> {
    let t = &cfg.text;
    if let (Some(bc), "bert") = (&t.bert, t.encoder.as_str()) {
        let x = bert::encode(b, bc, TEXT_BERT, &[ids])?;
        return b.linear(x, "text.proj");
    }
    let l = ids.len();
    let ids = b.ids(ids)?;
    let table = b.w("text.embed")?;
    let e = b.op(Op::Embedding, &[table, ids])?;
    let e = b.reshape(e, &[1, l, t.embed])?;
    let mut branches = Vec::with_capacity(t.widths.len());
    for i in 0..t.widths.len() {
        let (w, bias) = (b.w(&format!("text.conv.{i}.weight"))?, b.w(&format!("text.conv.{i}.bias"))?);
        let c = b.op(Op::Conv1d { bias: true, stride: 1 }, &[e, w, bias])?;
        branches.push(b.op(Op::Relu, &[c])?);
    }
    let cat = if branches.len() == 1 { branches[0] } else { b.op(Op::Concat { axis: 2 }, &branches)? };
    let cat = b.reshape(cat, &[l, t.channels * t.widths.len()])?;
    b.linear(cat, "text.proj")
}

/// The ViT over `n` images `[n, S, S, 3]` (each its own sequence): `[n, Np + 1, Wi]` after
/// the final layer norm, CLS first in each image.
pub fn vit(b: &mut Builder, cfg: &Config, pixels: &[f32], n: usize) -> Result<ValueId> {
    let im = &cfg.image;
    let (s, p, wi) = (im.size, im.patch, im.width);
    let np = (s / p) * (s / p);
    let x = b.data(host_f32(&[n, s, s, 3], pixels)?);
    let patches = b.op(Op::Im2col { patch: p }, &[x])?;
    let patches = b.reshape(patches, &[n * np, p * p * 3])?;
    let e = b.linear(patches, "image.patch")?;
    let e = b.reshape(e, &[n, np, wi])?;
    // One CLS row per image: a gather of the single-row CLS table.
    let cls = b.w("image.cls")?;
    let cls = b.reshape(cls, &[1, wi])?;
    let zeros = b.data(HostTensor::from_slice([n, 1], &vec![0i32; n])?);
    let cls = b.op(Op::Embedding, &[cls, zeros])?;
    let x = b.op(Op::Concat { axis: 1 }, &[cls, e])?;
    let pos = b.w("image.pos")?;
    let x = b.op(Op::Add, &[x, pos])?;
    let mut x = b.reshape(x, &[n * (np + 1), wi])?;
    let layout = b.layout(&vec![np + 1; n], &vec![0; n * (np + 1)], 1)?;
    for l in 0..im.layers {
        x = b.block(x, &format!("image.blocks.{l}"), im.heads, &layout)?;
    }
    let x = b.layer_norm(x, "image.ln")?;
    b.reshape(x, &[n, np + 1, wi])
}

/// One image `[S, S, 3]` → `[Np + 1, D]`.
pub fn image(b: &mut Builder, cfg: &Config, pixels: &[f32]) -> Result<ValueId> {
    let h = vit(b, cfg, pixels, 1)?;
    let h = b.reshape(h, &[cfg.image_tokens(), cfg.image.width])?;
    b.linear(h, "image.proj")
}

/// `n` sampled frames `[n, S, S, 3]` → `[n, D]`: each frame's CLS plus its temporal position.
pub fn video(b: &mut Builder, cfg: &Config, pixels: &[f32], n: usize) -> Result<ValueId> {
    let wi = cfg.image.width;
    let h = vit(b, cfg, pixels, n)?;
    let cls = b.slice(h, 1, 0, 1)?;
    let cls = b.reshape(cls, &[n, wi])?;
    let time = b.w("video.time")?;
    let time = b.slice(time, 0, 0, n)?;
    let x = b.op(Op::Add, &[cls, time])?;
    b.linear(x, "video.proj")
}

/// Log-mel `[F, 80]` → `[ceil(F / 2), D]`.
pub fn audio(b: &mut Builder, cfg: &Config, logmel: &[f32], frames: usize) -> Result<ValueId> {
    let au = &cfg.audio;
    let x = b.data(host_f32(&[1, frames, MELS], logmel)?);
    let (w1, b1) = (b.w("audio.conv1.weight")?, b.w("audio.conv1.bias")?);
    let x = b.op(Op::Conv1d { bias: true, stride: 1 }, &[x, w1, b1])?;
    let x = b.op(Op::Gelu, &[x])?;
    let (w2, b2) = (b.w("audio.conv2.weight")?, b.w("audio.conv2.bias")?);
    let x = b.op(Op::Conv1d { bias: true, stride: 2 }, &[x, w2, b2])?;
    let x = b.op(Op::Gelu, &[x])?;
    let f2 = frames.div_ceil(2);
    let x = b.reshape(x, &[f2, au.width])?;
    let pos = b.w("audio.pos")?;
    let pos = b.slice(pos, 0, 0, f2)?;
    let mut x = b.op(Op::Add, &[x, pos])?;
    let layout = b.layout(&[f2], &vec![0; f2], 1)?;
    for l in 0..au.layers {
        x = b.block(x, &format!("audio.blocks.{l}"), au.heads, &layout)?;
    }
    let x = b.layer_norm(x, "audio.ln")?;
    b.linear_ex(x, "audio.proj", true, Activation::None, None)
}
