//! Layer 2 of the model: the cross-modal fusion transformer over the concatenated tokens of
//! every input of a request (several requests run together as packed sequences), with the
//! modal positional encoding (modality-type embedding + position within the input) and the
//! learned per-modality-pair attention bias.

use omnifuse_core::graph::ValueId;
use omnifuse_core::{Op, Tensor};

use crate::builder::{AttnLayout, Builder, cu_seqlens};
use crate::config::{Config, MODALITIES};
use crate::error::{Error, Result};
use crate::input::Modality;

/// One input's encoded tokens `[n, D]` on the device, with its modality (cloning shares the
/// device buffer).
#[derive(Clone)]
pub struct Encoded {
    /// The input's modality.
    pub modality: Modality,
    /// Its tokens in the unified width.
    pub tokens: Tensor,
}

impl Encoded {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.desc.shape.dims().first().copied().unwrap_or(0)
    }

    /// True when the input gave no token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Fuse the inputs of one or more requests in one pass: every request is its own packed
/// sequence (its tokens see each other, never another request's), so a batch of requests runs
/// as one graph with varlen attention. Returns `Z [T, D]` after the final layer norm, the
/// requests' rows one after another.
pub fn fuse(b: &mut Builder, cfg: &Config, requests: &[&[Encoded]]) -> Result<ValueId> {
    let f = &cfg.fusion;
    let mut parts = Vec::new();
    let (mut type_ids, mut pos_ids, mut mod8) = (Vec::new(), Vec::new(), Vec::new());
    let mut lengths = Vec::with_capacity(requests.len());
    for inputs in requests {
        if inputs.is_empty() {
            return Err(Error::Request("a request needs at least one input".into()));
        }
        let mut len = 0;
        for (i, e) in inputs.iter().enumerate() {
            let n = e.len();
            if n > f.max_positions {
                return Err(Error::input(
                    i,
                    format!("gives {n} tokens, more than fusion.max_positions = {}", f.max_positions),
                ));
            }
            parts.push(b.device(e.tokens.clone()));
            type_ids.extend(std::iter::repeat_n(i32::from(e.modality.id()), n));
            pos_ids.extend(0..n as i32);
            mod8.extend(std::iter::repeat_n(e.modality.id(), n));
            len += n;
        }
        lengths.push(len);
    }
    if parts.is_empty() {
        return Err(Error::Request("a batch needs at least one request".into()));
    }
    let x = if parts.len() == 1 { parts[0] } else { b.op(Op::Concat { axis: 0 }, &parts)? };
    let (table, ids) = (b.w("fusion.modality")?, b.ids(&type_ids)?);
    let type_emb = b.op(Op::Embedding, &[table, ids])?;
    let (table, ids) = (b.w("fusion.pos")?, b.ids(&pos_ids)?);
    let pos_emb = b.op(Op::Embedding, &[table, ids])?;
    let x = b.op(Op::Add, &[x, type_emb])?;
    let mut x = b.op(Op::Add, &[x, pos_emb])?;
    let cu = b.ids(&cu_seqlens(&lengths)?)?;
    let m = b.ids8(&mod8)?;
    let bias = if f.pair_bias { Some(b.w("fusion.pair_bias")?) } else { None };
    let layout = AttnLayout { cu_q: cu, cu_k: cu, mod_q: m, mod_k: m, modalities: MODALITIES, bias };
    for l in 0..f.layers {
        x = b.block(x, &format!("fusion.blocks.{l}"), f.heads, &layout)?;
    }
    b.layer_norm(x, "fusion.ln")
}
