//! The generation head: a small byte-level decoder with causal self-attention over its own
//! tokens (keys and values of earlier steps kept in a KV cache on the device, never
//! recomputed) and cross-attention to the fused sequence (its keys and values computed once
//! per request). Greedy or top-k/temperature sampling with a seeded ChaCha8 generator.

use std::collections::HashMap;
use std::sync::Arc;

use omnifuse_core::attention::MaskMode;
use omnifuse_core::graph::ValueId;
use omnifuse_core::{Backend, Op, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::builder::{AttnLayout, Builder, to_f32};
use crate::config::{BOS, EOS};
use crate::error::{Error, Result};

/// The decoder's shape, from its head config.
#[derive(Clone, Copy, Debug)]
pub struct DecoderShape {
    /// Unified width D.
    pub width: usize,
    /// Decoder blocks.
    pub layers: usize,
    /// Heads.
    pub heads: usize,
    /// Rows of the position table.
    pub max_positions: usize,
    /// Layer-norm epsilon.
    pub eps: f32,
}

/// How tokens are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Most tokens to produce.
    pub max_tokens: usize,
    /// 0 (or less) picks the argmax; otherwise logits are divided by it before sampling.
    pub temperature: f32,
    /// Keep only the `top_k` largest logits when sampling (0 keeps all).
    pub top_k: usize,
    /// Seed of the sampler.
    pub seed: u64,
}

/// What the head produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// Token ids, `[EOS]` excluded.
    pub tokens: Vec<i32>,
    /// Each token's log-probability under its step's softmax.
    pub logprobs: Vec<f32>,
}

/// Run the decoder `name` against the fused sequence `z [T, D]`.
pub fn generate(
    backend: &Arc<dyn Backend>,
    weights: &HashMap<String, Tensor>,
    name: &str,
    shape: DecoderShape,
    z: &Tensor,
    sampling: Sampling,
) -> Result<Generated> {
    let (d, h) = (shape.width, shape.heads);
    let dh = d / h;
    let t_mem = z.desc.shape.dims().first().copied().unwrap_or(0);
    if sampling.max_tokens >= shape.max_positions {
        return Err(Error::Request(format!(
            "max_tokens {} must be below the decoder's {} positions",
            sampling.max_tokens, shape.max_positions
        )));
    }
    // Cross-attention keys and values of every layer, once.
    let mut b = Builder::new(weights, shape.eps);
    let zv = b.device(z.clone());
    let mut outs = Vec::new();
    for l in 0..shape.layers {
        let kv = b.linear(zv, &format!("heads.{name}.blocks.{l}.cross.kv"))?;
        for half in 0..2 {
            let part = b.slice(kv, 1, half * d, (half + 1) * d)?;
            outs.push(b.reshape(part, &[t_mem, h, dh])?);
        }
    }
    let memory = b.run(backend, &outs)?;

    let mut cache: Vec<Tensor> = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(sampling.seed);
    let mut out = Generated { tokens: Vec::new(), logprobs: Vec::new() };
    let mut token = BOS;
    for step in 0..sampling.max_tokens {
        let (logits, next_cache) = step_graph(backend, weights, name, shape, &memory, &cache, token, step)?;
        cache = next_cache;
        let (chosen, logprob) = choose(&logits, &sampling, &mut rng);
        if chosen == EOS {
            break;
        }
        out.tokens.push(chosen);
        out.logprobs.push(logprob);
        token = chosen;
    }
    Ok(out)
}

/// One decoder step for `token` at position `step`; returns the logits and the grown cache
/// (`[k, v]` per layer, each `[step + 1, H, Dh]`).
#[allow(clippy::too_many_arguments)]
fn step_graph(
    backend: &Arc<dyn Backend>,
    weights: &HashMap<String, Tensor>,
    name: &str,
    shape: DecoderShape,
    memory: &[Tensor],
    cache: &[Tensor],
    token: i32,
    step: usize,
) -> Result<(Vec<f32>, Vec<Tensor>)> {
    let (d, h) = (shape.width, shape.heads);
    let dh = d / h;
    let p = format!("heads.{name}");
    let mut b = Builder::new(weights, shape.eps);
    let (table, id) = (b.w(&format!("{p}.embed"))?, b.ids(&[token])?);
    let emb = b.op(Op::Embedding, &[table, id])?;
    let pos = b.w(&format!("{p}.pos"))?;
    let pos = b.slice(pos, 0, step, step + 1)?;
    let mut x = b.op(Op::Add, &[emb, pos])?;
    let t_mem = memory.first().map(|m| m.desc.shape.dims()[0]).unwrap_or(0);
    let self_layout = single_query_layout(&mut b, step + 1)?;
    let cross_layout = single_query_layout(&mut b, t_mem)?;
    let mut grown: Vec<ValueId> = Vec::with_capacity(2 * shape.layers);
    for l in 0..shape.layers {
        let pl = format!("{p}.blocks.{l}");
        // Causal self-attention: the new row's key/value joins the cache; all of it is visible.
        let hn = b.layer_norm(x, &format!("{pl}.ln1"))?;
        let qkv = b.linear(hn, &format!("{pl}.self.qkv"))?;
        let mut qkv3 = Vec::with_capacity(3);
        for part in 0..3 {
            let s = b.slice(qkv, 1, part * d, (part + 1) * d)?;
            qkv3.push(b.reshape(s, &[1, h, dh])?);
        }
        let (k_all, v_all) = if step == 0 {
            (qkv3[1], qkv3[2])
        } else {
            let (kc, vc) = (b.device(cache[2 * l].clone()), b.device(cache[2 * l + 1].clone()));
            (b.op(Op::Concat { axis: 0 }, &[kc, qkv3[1]])?, b.op(Op::Concat { axis: 0 }, &[vc, qkv3[2]])?)
        };
        grown.push(k_all);
        grown.push(v_all);
        let a = b.attention3(qkv3[0], k_all, v_all, MaskMode::Causal, &self_layout)?;
        let a = b.reshape(a, &[1, d])?;
        x = b.linear_ex(a, &format!("{pl}.self.out"), true, omnifuse_core::Activation::None, Some(x))?;
        // Cross-attention to the fused sequence.
        let hn = b.layer_norm(x, &format!("{pl}.ln2"))?;
        let q = b.linear(hn, &format!("{pl}.cross.q"))?;
        let q = b.reshape(q, &[1, h, dh])?;
        let (mk, mv) = (b.device(memory[2 * l].clone()), b.device(memory[2 * l + 1].clone()));
        let a = b.attention3(q, mk, mv, MaskMode::Full, &cross_layout)?;
        let a = b.reshape(a, &[1, d])?;
        x = b.linear_ex(a, &format!("{pl}.cross.out"), true, omnifuse_core::Activation::None, Some(x))?;
        x = b.mlp(x, &pl, "ln3")?;
    }
    let x = b.layer_norm(x, &format!("{p}.ln"))?;
    let logits = b.linear(x, &format!("{p}.lm"))?;
    let mut outputs = vec![logits];
    outputs.extend(&grown);
    let mut res = b.run(backend, &outputs)?;
    let next_cache = res.split_off(1);
    let logits = to_f32(backend, &res[0])?;
    Ok((logits, next_cache))
}

/// One query row against `keys` keys of one sequence, one modality.
fn single_query_layout(b: &mut Builder, keys: usize) -> Result<AttnLayout> {
    let cu_q = b.ids(&[0, 1])?;
    let cu_k = b.ids(&[0, i32::try_from(keys).map_err(|_| Error::Request(format!("{keys} keys is too many")))?])?;
    let mod_q = b.ids8(&[0])?;
    let mod_k = b.ids8(&vec![0; keys])?;
    Ok(AttnLayout { cu_q, cu_k, mod_q, mod_k, modalities: 1, bias: None })
}

/// Pick the next token: argmax (lowest id on ties) when greedy, else a top-k/temperature
/// draw. Returns it with its log-probability under the unscaled softmax.
pub fn choose(logits: &[f32], s: &Sampling, rng: &mut ChaCha8Rng) -> (i32, f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max as f64 + logits.iter().map(|&l| ((l - max) as f64).exp()).sum::<f64>().ln();
    let logprob = |i: usize| (logits[i] as f64 - lse) as f32;
    let argmax = logits.iter().enumerate().fold(0, |best, (i, &l)| if l > logits[best] { i } else { best });
    if s.temperature <= 0.0 || logits.is_empty() {
        return (argmax as i32, if logits.is_empty() { 0.0 } else { logprob(argmax) });
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if s.top_k > 0 {
        order.truncate(s.top_k);
    }
    let t = s.temperature as f64;
    let weights: Vec<f64> = order.iter().map(|&i| ((logits[i] - max) as f64 / t).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (k, w) in weights.iter().enumerate() {
        if u < *w {
            return (order[k] as i32, logprob(order[k]));
        }
        u -= w;
    }
    let last = order.last().copied().unwrap_or(argmax);
    (last as i32, logprob(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_lowest_argmax_and_sampling_is_seeded() {
        let logits = [0.5f32, 2.0, 2.0, -1.0];
        let greedy = Sampling { max_tokens: 4, temperature: 0.0, top_k: 0, seed: 1 };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (t, lp) = choose(&logits, &greedy, &mut rng);
        assert_eq!(t, 1);
        let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        assert!((lp as f64 - (2.0 - z.ln())).abs() < 1e-6);
        let top2 = Sampling { temperature: 1.0, top_k: 2, ..greedy };
        let draws = |seed| {
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            (0..32).map(|_| choose(&logits, &top2, &mut r).0).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert!(draws(7).iter().all(|&t| t == 1 || t == 2), "top-2 keeps ids 1 and 2 only");
        assert!(draws(7).contains(&1) && draws(7).contains(&2));
    }
}
