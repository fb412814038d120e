//! The generation head: a small byte-level decoder with causal self-attention over its own
//! tokens (keys and values of earlier steps kept in a KV cache on the device, never
//! recomputed) and cross-attention to the fused sequence (its keys and values computed once
//! per request). Greedy or top-k/temperature sampling with a seeded ChaCha8 generator.

use std::sync::Arc;

use omnifuse_core::attention::MaskMode;
use omnifuse_core::graph::ValueId;
use omnifuse_core::{Backend, Op, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::builder::{AttnLayout, Builder, Source, to_f32};
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

impl DecoderShape {
    /// Refuse a sampling whose token budget the position table cannot hold.
    pub fn check(&self, s: &Sampling) -> Result<()> {
        if s.max_tokens >= self.max_positions {
            return Err(Error::Request(format!(
                "max_tokens {} must be below the decoder's {} positions",
                s.max_tokens, self.max_positions
            )));
        }
        Ok(())
    }
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
    src: Source<'_>,
    name: &str,
    shape: DecoderShape,
    z: &Tensor,
    sampling: Sampling,
) -> Result<Generated> {
    let mut out = generate_batch(backend, src, name, shape, &[(z, sampling)])?;
    out.pop().ok_or_else(|| Error::Request("internal: a batch of one generated nothing".into()))
}

/// Run the decoder `name` for several requests at once, each against its own fused sequence
/// and with its own sampling. The requests decode in lockstep: one graph per step holds every
/// still-running request's row, so the step's GEMMs have one row per request and each
/// attention sees only its own request's cache and fused sequence (packed, varlen). A request
/// that has produced EOS or its `max_tokens` leaves the batch; its cache rows are dropped.
/// Each request's tokens are those it would produce alone (same seed, same sampler).
pub fn generate_batch(
    backend: &Arc<dyn Backend>,
    src: Source<'_>,
    name: &str,
    shape: DecoderShape,
    requests: &[(&Tensor, Sampling)],
) -> Result<Vec<Generated>> {
    for (_, s) in requests {
        shape.check(s)?;
    }
    let mut outs: Vec<Generated> =
        requests.iter().map(|_| Generated { tokens: Vec::new(), logprobs: Vec::new() }).collect();
    // Requests still decoding, by index into `requests`.
    let mut live: Vec<usize> = (0..requests.len()).filter(|&i| requests[i].1.max_tokens > 0).collect();
    if live.is_empty() {
        return Ok(outs);
    }
    let mut memory = cross_memory(backend, src, name, shape, requests, &live)?;
    let mut rngs: Vec<ChaCha8Rng> = requests.iter().map(|(_, s)| ChaCha8Rng::seed_from_u64(s.seed)).collect();
    let mut tokens: Vec<i32> = vec![BOS; requests.len()];
    let mut cache: Vec<Tensor> = Vec::new();
    for step in 0.. {
        let step_tokens: Vec<i32> = live.iter().map(|&i| tokens[i]).collect();
        let (logits, next_cache) = step_graph(backend, src, name, shape, &memory, &cache, &step_tokens, step)?;
        cache = next_cache;
        let vocab = logits.len() / live.len().max(1);
        let mut keep = Vec::with_capacity(live.len());
        for (row, &i) in live.iter().enumerate() {
            let (chosen, logprob) = choose(&logits[row * vocab..(row + 1) * vocab], &requests[i].1, &mut rngs[i]);
            if chosen == EOS {
                continue;
            }
            outs[i].tokens.push(chosen);
            outs[i].logprobs.push(logprob);
            tokens[i] = chosen;
            if outs[i].tokens.len() < requests[i].1.max_tokens {
                keep.push(row);
            }
        }
        if keep.is_empty() {
            break;
        }
        if keep.len() < live.len() {
            memory = memory.retain(backend, src, shape.eps, &keep)?;
            // Each cache tensor holds `step + 1` rows per live request, request by request.
            let steps = step + 1;
            let rows: Vec<i32> = keep.iter().flat_map(|&r| r * steps..(r + 1) * steps).map(|x| x as i32).collect();
            cache = gather_rows(backend, src, shape.eps, &cache, &rows)?;
            live = keep.iter().map(|&r| live[r]).collect();
        }
    }
    Ok(outs)
}

/// The cross-attention keys and values of every layer for the live requests, packed one
/// request after another (`[ΣT, H, Dh]` each), with their `cu_seqlens`.
struct Memory {
    /// `[k, v]` per layer.
    kv: Vec<Tensor>,
    /// Rows of each live request's fused sequence.
    lengths: Vec<usize>,
}

fn cross_memory(
    backend: &Arc<dyn Backend>,
    src: Source<'_>,
    name: &str,
    shape: DecoderShape,
    requests: &[(&Tensor, Sampling)],
    live: &[usize],
) -> Result<Memory> {
    let (d, h) = (shape.width, shape.heads);
    let lengths: Vec<usize> =
        live.iter().map(|&i| requests[i].0.desc.shape.dims().first().copied().unwrap_or(0)).collect();
    let total: usize = lengths.iter().sum();
    let mut b = src.builder(shape.eps);
    let parts: Vec<ValueId> = live.iter().map(|&i| b.device(requests[i].0.clone())).collect();
    let zv = if parts.len() == 1 { parts[0] } else { b.op(Op::Concat { axis: 0 }, &parts)? };
    let mut outs = Vec::with_capacity(2 * shape.layers);
    for l in 0..shape.layers {
        let kv = b.linear(zv, &format!("heads.{name}.blocks.{l}.cross.kv"))?;
        for half in 0..2 {
            let part = b.slice(kv, 1, half * d, (half + 1) * d)?;
            outs.push(b.reshape(part, &[total, h, d / h])?);
        }
    }
    Ok(Memory { kv: b.run(backend, &outs)?, lengths })
}

impl Memory {
    /// Keep only the requests at positions `keep` (ascending) of the live list.
    fn retain(self, backend: &Arc<dyn Backend>, src: Source<'_>, eps: f32, keep: &[usize]) -> Result<Memory> {
        let mut starts = Vec::with_capacity(self.lengths.len());
        let mut at = 0;
        for &n in &self.lengths {
            starts.push(at);
            at += n;
        }
        let rows: Vec<i32> =
            keep.iter().flat_map(|&r| starts[r]..starts[r] + self.lengths[r]).map(|x| x as i32).collect();
        let kv = gather_rows(backend, src, eps, &self.kv, &rows)?;
        Ok(Memory { kv, lengths: keep.iter().map(|&r| self.lengths[r]).collect() })
    }
}

/// Each tensor's rows `rows` (its first axis), through an embedding lookup with the tensor
/// viewed as a table of rows.
fn gather_rows(
    backend: &Arc<dyn Backend>,
    src: Source<'_>,
    eps: f32,
    tensors: &[Tensor],
    rows: &[i32],
) -> Result<Vec<Tensor>> {
    let mut b = src.builder(eps);
    let mut outs = Vec::with_capacity(tensors.len());
    for t in tensors {
        let dims = t.desc.shape.dims().to_vec();
        let n = dims.first().copied().unwrap_or(0);
        let width: usize = dims.iter().skip(1).product();
        let v = b.device(t.clone());
        let table = b.reshape(v, &[n, width])?;
        let ids = b.ids(rows)?;
        let g = b.op(Op::Embedding, &[table, ids])?;
        let mut out_dims = dims.clone();
        out_dims[0] = rows.len();
        outs.push(b.reshape(g, &out_dims)?);
    }
    b.run(backend, &outs)
}

/// One decoder step for the live requests' `tokens` at position `step`; returns the logits
/// `[live · V]` and the grown cache (`[k, v]` per layer, each `[live · (step + 1), H, Dh]`,
/// request by request).
#[allow(clippy::too_many_arguments)]
fn step_graph(
    backend: &Arc<dyn Backend>,
    src: Source<'_>,
    name: &str,
    shape: DecoderShape,
    memory: &Memory,
    cache: &[Tensor],
    tokens: &[i32],
    step: usize,
) -> Result<(Vec<f32>, Vec<Tensor>)> {
    let (d, h) = (shape.width, shape.heads);
    let dh = d / h;
    let n = tokens.len();
    let p = format!("heads.{name}");
    let mut b = src.builder(shape.eps);
    let (table, id) = (b.w(&format!("{p}.embed"))?, b.ids(tokens)?);
    let emb = b.op(Op::Embedding, &[table, id])?;
    let (pos, at) = (b.w(&format!("{p}.pos"))?, b.ids(&vec![step as i32; n])?);
    let pos = b.op(Op::Embedding, &[pos, at])?;
    let mut x = b.op(Op::Add, &[emb, pos])?;
    let self_layout = query_rows_layout(&mut b, &vec![step + 1; n])?;
    let cross_layout = query_rows_layout(&mut b, &memory.lengths)?;
    let mut grown: Vec<ValueId> = Vec::with_capacity(2 * shape.layers);
    for l in 0..shape.layers {
        let pl = format!("{p}.blocks.{l}");
        // Causal self-attention: each new row's key/value joins its request's cache; all of
        // that request's cache is visible.
        let hn = b.layer_norm(x, &format!("{pl}.ln1"))?;
        let qkv = b.linear(hn, &format!("{pl}.self.qkv"))?;
        let mut qkv3 = Vec::with_capacity(3);
        for part in 0..3 {
            let s = b.slice(qkv, 1, part * d, (part + 1) * d)?;
            qkv3.push(b.reshape(s, &[n, 1, d])?);
        }
        let (k_all, v_all) = if step == 0 {
            (qkv3[1], qkv3[2])
        } else {
            let mut kv = [qkv3[1], qkv3[2]];
            for (half, new) in kv.iter_mut().enumerate() {
                let c = b.device(cache[2 * l + half].clone());
                let c = b.reshape(c, &[n, step, d])?;
                *new = b.op(Op::Concat { axis: 1 }, &[c, *new])?;
            }
            (kv[0], kv[1])
        };
        let (k_all, v_all) = (b.reshape(k_all, &[n * (step + 1), h, dh])?, b.reshape(v_all, &[n * (step + 1), h, dh])?);
        grown.push(k_all);
        grown.push(v_all);
        let q = b.reshape(qkv3[0], &[n, h, dh])?;
        let a = b.attention3(q, k_all, v_all, MaskMode::Causal, &self_layout)?;
        let a = b.reshape(a, &[n, d])?;
        x = b.linear_ex(a, &format!("{pl}.self.out"), true, omnifuse_core::Activation::None, Some(x))?;
        // Cross-attention to each request's fused sequence.
        let hn = b.layer_norm(x, &format!("{pl}.ln2"))?;
        let q = b.linear(hn, &format!("{pl}.cross.q"))?;
        let q = b.reshape(q, &[n, h, dh])?;
        let (mk, mv) = (b.device(memory.kv[2 * l].clone()), b.device(memory.kv[2 * l + 1].clone()));
        let a = b.attention3(q, mk, mv, MaskMode::Full, &cross_layout)?;
        let a = b.reshape(a, &[n, d])?;
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

/// One query row per request against `keys[i]` keys of request `i`, one modality.
fn query_rows_layout(b: &mut Builder, keys: &[usize]) -> Result<AttnLayout> {
    let cu_q: Vec<i32> = (0..=keys.len() as i32).collect();
    let mut cu_k = Vec::with_capacity(keys.len() + 1);
    cu_k.push(0i32);
    for &k in keys {
        let last = *cu_k.last().unwrap_or(&0);
        cu_k.push(last + i32::try_from(k).map_err(|_| Error::Request(format!("{k} keys is too many")))?);
    }
    let total = cu_k.last().copied().unwrap_or(0) as usize;
    let cu_q = b.ids(&cu_q)?;
    let cu_k = b.ids(&cu_k)?;
    let mod_q = b.ids8(&vec![0; keys.len()])?;
    let mod_k = b.ids8(&vec![0; total])?;
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
