//! Layer 1 of the model: the light per-modality encoders (TextCNN or BERT, ViT, audio conv +
//! transformer, per-frame ViT for video), each ending in its projection into the unified
//! width D; MODEL.md gives the exact definitions. Each runs over all inputs of its modality
//! at once (stage-wise batching), packed one after another, and yields one `[n_i, D]` token
//! block per input — the same values each input gets alone (one input is a batch of one).
//!
//! - Images: one ViT over all images (each its own attention sequence), one projection.
//! - Videos: one ViT over every video's frames; each video's CLS rows get its own temporal
//!   positions (gathered from the table), one projection.
//! - Text (TextCNN): the sequences' embeddings are packed with zero rows between them — as
//!   many as the widest convolution reaches — so each "same" convolution sees the zeros it
//!   sees alone; the rows between sequences are dropped by a gather. BERT text runs the
//!   encoder over the packed sentences (varlen attention).
//! - Audio: the log-mel frames are packed at even offsets with at least one zero frame after
//!   each input, so the stride-2 convolution's grid and padding match a lone input; the first
//!   convolution's output is multiplied by a 0/1 mask so the gaps stay zero; the kept rows are
//!   gathered, get their positions, and the transformer runs with one sequence per input.

use omnifuse_core::graph::ValueId;
use omnifuse_core::op::Activation;
use omnifuse_core::{HostTensor, Op};

use crate::bert;
use crate::builder::{Builder, host_f32};
use crate::config::{Config, MELS};
use crate::error::{Error, Result};
use crate::weights::TEXT_BERT;

/// Packed encoder output `[Σ n_i, D]` and each input's row count `n_i`, in input order.
pub struct Packed {
    /// The rows.
    pub rows: ValueId,
    /// Rows per input.
    pub lengths: Vec<usize>,
}

fn ids_i32(values: impl IntoIterator<Item = usize>) -> Result<Vec<i32>> {
    values
        .into_iter()
        .map(|v| i32::try_from(v).map_err(|_| Error::Request(format!("index {v} does not fit in i32"))))
        .collect()
}

/// Gather rows `rows` of `x [T, W]`.
fn gather(b: &mut Builder, x: ValueId, rows: &[usize]) -> Result<ValueId> {
    let ids = b.ids(&ids_i32(rows.iter().copied())?)?;
    b.op(Op::Embedding, &[x, ids])
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

/// Token ids of several texts → packed `[Σ L_i, D]`.
pub fn texts(b: &mut Builder, cfg: &Config, seqs: &[&[i32]]) -> Result<Packed> {
    let t = &cfg.text;
    let lengths: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
    if let (Some(bc), "bert") = (&t.bert, t.encoder.as_str()) {
        let x = bert::encode(b, bc, TEXT_BERT, seqs)?;
        return Ok(Packed { rows: b.linear(x, "text.proj")?, lengths });
    }
    // Zero rows between sequences: a convolution of width w reaches w − 1 rows to one side at
    // most, so that many zeros separate any two sequences.
    let gap = t.widths.iter().copied().max().unwrap_or(1).saturating_sub(1);
    let mut ids = Vec::new();
    let mut keep = Vec::new();
    let mut mask = Vec::new();
    for s in seqs {
        keep.extend(ids.len()..ids.len() + s.len());
        ids.extend_from_slice(s);
        ids.extend(std::iter::repeat_n(0, gap));
        mask.extend(std::iter::repeat_n(1.0f32, s.len()));
        mask.extend(std::iter::repeat_n(0.0f32, gap));
    }
    let l = ids.len();
    let idv = b.ids(&ids)?;
    let table = b.w("text.embed")?;
    let e = b.op(Op::Embedding, &[table, idv])?;
    let mask: Vec<f32> = mask.iter().flat_map(|&m| std::iter::repeat_n(m, t.embed)).collect();
    let mask = b.data(host_f32(&[l, t.embed], &mask)?);
    let e = b.op(Op::Mul, &[e, mask])?;
    let e = b.reshape(e, &[1, l, t.embed])?;
    let mut branches = Vec::with_capacity(t.widths.len());
    for i in 0..t.widths.len() {
        let (w, bias) = (b.w(&format!("text.conv.{i}.weight"))?, b.w(&format!("text.conv.{i}.bias"))?);
        let c = b.op(Op::Conv1d { bias: true, stride: 1 }, &[e, w, bias])?;
        branches.push(b.op(Op::Relu, &[c])?);
    }
    let cat = if branches.len() == 1 { branches[0] } else { b.op(Op::Concat { axis: 2 }, &branches)? };
    let cat = b.reshape(cat, &[l, t.channels * t.widths.len()])?;
    let cat = gather(b, cat, &keep)?;
    Ok(Packed { rows: b.linear(cat, "text.proj")?, lengths })
}

/// Several images, each `[S, S, 3]` → packed `[n · (Np + 1), D]`.
pub fn images(b: &mut Builder, cfg: &Config, pixels: &[&[f32]]) -> Result<Packed> {
    let n = pixels.len();
    let all: Vec<f32> = pixels.iter().flat_map(|p| p.iter().copied()).collect();
    let h = vit(b, cfg, &all, n)?;
    let per = cfg.image_tokens();
    let h = b.reshape(h, &[n * per, cfg.image.width])?;
    Ok(Packed { rows: b.linear(h, "image.proj")?, lengths: vec![per; n] })
}

/// Several videos, each `(pixels [N_i, S, S, 3], N_i)` → packed `[Σ N_i, D]`.
pub fn videos(b: &mut Builder, cfg: &Config, videos: &[(&[f32], usize)]) -> Result<Packed> {
    let wi = cfg.image.width;
    let frames: usize = videos.iter().map(|v| v.1).sum();
    let all: Vec<f32> = videos.iter().flat_map(|v| v.0.iter().copied()).collect();
    let h = vit(b, cfg, &all, frames)?;
    let cls = b.slice(h, 1, 0, 1)?;
    let cls = b.reshape(cls, &[frames, wi])?;
    let time = b.w("video.time")?;
    let at = b.ids(&ids_i32(videos.iter().flat_map(|v| 0..v.1))?)?;
    let time = b.op(Op::Embedding, &[time, at])?;
    let x = b.op(Op::Add, &[cls, time])?;
    Ok(Packed { rows: b.linear(x, "video.proj")?, lengths: videos.iter().map(|v| v.1).collect() })
}

/// Several log-mel inputs, each `(features [F_i, 80], F_i)` → packed `[Σ ceil(F_i / 2), D]`.
pub fn audios(b: &mut Builder, cfg: &Config, inputs: &[(&[f32], usize)]) -> Result<Packed> {
    let au = &cfg.audio;
    // Each input at an even offset, followed by at least one zero frame.
    let mut offsets = Vec::with_capacity(inputs.len());
    let mut total = 0;
    for &(_, f) in inputs {
        offsets.push(total);
        total += (f + 1).next_multiple_of(2);
    }
    let mut x = vec![0.0f32; total * MELS];
    let mut mask = vec![0.0f32; total * au.width];
    for (&(feats, f), &o) in inputs.iter().zip(&offsets) {
        x[o * MELS..(o + f) * MELS].copy_from_slice(&feats[..f * MELS]);
        mask[o * au.width..(o + f) * au.width].fill(1.0);
    }
    let x = b.data(host_f32(&[1, total, MELS], &x)?);
    let (w1, b1) = (b.w("audio.conv1.weight")?, b.w("audio.conv1.bias")?);
    let x = b.op(Op::Conv1d { bias: true, stride: 1 }, &[x, w1, b1])?;
    let x = b.op(Op::Gelu, &[x])?;
    let mask = b.data(host_f32(&[1, total, au.width], &mask)?);
    let x = b.op(Op::Mul, &[x, mask])?;
    let (w2, b2) = (b.w("audio.conv2.weight")?, b.w("audio.conv2.bias")?);
    let x = b.op(Op::Conv1d { bias: true, stride: 2 }, &[x, w2, b2])?;
    let x = b.op(Op::Gelu, &[x])?;
    let x = b.reshape(x, &[total / 2, au.width])?;
    let lengths: Vec<usize> = inputs.iter().map(|&(_, f)| f.div_ceil(2)).collect();
    let rows: Vec<usize> = offsets.iter().zip(&lengths).flat_map(|(&o, &n)| o / 2..o / 2 + n).collect();
    let x = gather(b, x, &rows)?;
    let pos = b.w("audio.pos")?;
    let at = b.ids(&ids_i32(lengths.iter().flat_map(|&n| 0..n))?)?;
    let pos = b.op(Op::Embedding, &[pos, at])?;
    let mut x = b.op(Op::Add, &[x, pos])?;
    let n: usize = lengths.iter().sum();
    let layout = b.layout(&lengths, &vec![0; n], 1)?;
    for l in 0..au.layers {
        x = b.block(x, &format!("audio.blocks.{l}"), au.heads, &layout)?;
    }
    let x = b.layer_norm(x, "audio.ln")?;
    Ok(Packed { rows: b.linear_ex(x, "audio.proj", true, Activation::None, None)?, lengths })
}
