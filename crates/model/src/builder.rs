//! Graph building for the model: a [`Builder`] wraps a core [`Graph`] whose inputs are either
//! weights (bound to tensors uploaded once when the model loads) or per-request data, and
//! offers the layers the model is made of — linear, layer norm, attention, the pre-LN block —
//! each a handful of core ops, so every backend runs the model unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use omnifuse_core::attention::{AttentionSpec, MaskMode};
use omnifuse_core::exec::{Session, SessionOptions};
use omnifuse_core::op::{Activation, Epilogue, GemmSpec, QGemmSpec};
use omnifuse_core::{Backend, DType, Graph, HostTensor, Op, Tensor, ValueId};

use crate::calibrate::Observer;
use crate::error::{Error, Result};
use crate::weights::{input_scale_name, scale_name};

/// What a graph input is bound to when the graph runs.
enum Binding {
    Weight(String),
    Data(HostTensor),
    Device(Tensor),
}

/// The attention geometry of one call: packed sequences and per-token modality ids.
pub struct AttnLayout {
    /// `cu_seqlens` of the queries (i32 `[B+1]`).
    pub cu_q: ValueId,
    /// `cu_seqlens` of the keys.
    pub cu_k: ValueId,
    /// Modality ids of the queries (i8 `[Tq]`).
    pub mod_q: ValueId,
    /// Modality ids of the keys (i8 `[Tk]`).
    pub mod_k: ValueId,
    /// Number of modality ids.
    pub modalities: usize,
    /// A per-(head, query modality, key modality) bias `[H, M, M]`.
    pub bias: Option<ValueId>,
}

/// What every graph of a model is built over: its device weights, the static input steps of
/// its INT8 `Linear` layers, and the calibration observer while one is set. Copied into each
/// graph builder — the encoders', the fusion's, the heads' and every decoder step's alike.
#[derive(Clone, Copy)]
pub struct Source<'w> {
    /// The model's device weights, by name.
    pub weights: &'w HashMap<String, Tensor>,
    /// Static per-tensor input steps, by weight name (empty: every input per token).
    pub steps: &'w HashMap<String, f32>,
    /// Records `Linear` inputs while calibrating.
    pub observer: Option<&'w Observer>,
}

impl<'w> Source<'w> {
    /// An empty graph over this source; `eps` is the layer-norm epsilon.
    pub fn builder(&self, eps: f32) -> Builder<'w> {
        let b = Builder::new(self.weights, eps).with_steps(self.steps);
        match self.observer {
            Some(o) => b.with_observer(o),
            None => b,
        }
    }
}

/// A graph under construction, with its input bindings.
pub struct Builder<'w> {
    /// The graph.
    pub g: Graph,
    bindings: Vec<Binding>,
    weights: &'w HashMap<String, Tensor>,
    bound: HashMap<String, ValueId>,
    eps: f32,
    /// The model runs in f16 storage: float data inputs are stored as f16 too.
    half: bool,
    /// Static per-tensor input steps of INT8 `Linear` weights, by weight name.
    steps: Option<&'w HashMap<String, f32>>,
    /// Records `Linear` inputs while calibrating (`None` in normal runs: no extra outputs).
    observer: Option<&'w Observer>,
    /// `Linear` inputs to record: weight name, value, the layer norm that produced it.
    taps: Vec<(String, ValueId, Option<String>)>,
    /// Layer-norm outputs of this graph, by value, with the norm's parameter prefix.
    norms: HashMap<ValueId, String>,
}

impl<'w> Builder<'w> {
    /// An empty graph over the model's device weights; `eps` is the layer-norm epsilon. When
    /// the weights are stored in f16, so are the float data inputs.
    pub fn new(weights: &'w HashMap<String, Tensor>, eps: f32) -> Self {
        let half = weights.values().any(|t| t.desc.dtype == DType::F16);
        Builder {
            g: Graph::new(),
            bindings: Vec::new(),
            weights,
            bound: HashMap::new(),
            eps,
            half,
            steps: None,
            observer: None,
            taps: Vec::new(),
            norms: HashMap::new(),
        }
    }

    /// Quantise the inputs of INT8 `Linear` layers found in `steps` with that static
    /// per-tensor step instead of per token.
    pub fn with_steps(mut self, steps: &'w HashMap<String, f32>) -> Self {
        self.steps = Some(steps);
        self
    }

    /// Record every `Linear` input into `observer` when the graph runs (calibration).
    pub fn with_observer(mut self, observer: &'w Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The weight called `name` (one graph input however often it is used).
    pub fn w(&mut self, name: &str) -> Result<ValueId> {
        if let Some(v) = self.bound.get(name) {
            return Ok(*v);
        }
        let t = self.weights.get(name).ok_or_else(|| Error::Weights(format!("tensor '{name}' is missing")))?;
        let v = self.g.input(t.desc.clone());
        self.bindings.push(Binding::Weight(name.to_string()));
        self.bound.insert(name.to_string(), v);
        Ok(v)
    }

    /// A per-request host tensor input (f32 data stored as f16 in an f16 model).
    pub fn data(&mut self, t: HostTensor) -> ValueId {
        let t = if self.half && t.desc.dtype == DType::F32 { to_f16(&t) } else { t };
        let v = self.g.input(t.desc.clone());
        self.bindings.push(Binding::Data(t));
        v
    }

    /// An input already on the device (an earlier stage's output).
    pub fn device(&mut self, t: Tensor) -> ValueId {
        let v = self.g.input(t.desc.clone());
        self.bindings.push(Binding::Device(t));
        v
    }

    /// An i32 vector input.
    pub fn ids(&mut self, values: &[i32]) -> Result<ValueId> {
        Ok(self.data(HostTensor::from_slice([values.len()], values)?))
    }

    /// An i8 vector input.
    pub fn ids8(&mut self, values: &[i8]) -> Result<ValueId> {
        Ok(self.data(HostTensor::from_slice([values.len()], values)?))
    }

    /// Apply an op.
    pub fn op(&mut self, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        Ok(self.g.op(op, inputs)?)
    }

    /// Shape of a value.
    pub fn dims(&self, v: ValueId) -> Result<Vec<usize>> {
        Ok(self.g.value(v)?.desc.shape.dims().to_vec())
    }

    /// `x` under a new shape.
    pub fn reshape(&mut self, x: ValueId, shape: &[usize]) -> Result<ValueId> {
        if self.dims(x)? == shape {
            return Ok(x);
        }
        self.op(Op::Reshape { shape: shape.to_vec() }, &[x])
    }

    /// Rows `start..end` of axis `axis`.
    pub fn slice(&mut self, x: ValueId, axis: usize, start: usize, end: usize) -> Result<ValueId> {
        self.op(Op::Slice { axis, start, end }, &[x])
    }

    /// `act(x · p.weightᵀ + p.bias) (+ residual)`; `bias` says whether `p.bias` exists.
    pub fn linear_ex(
        &mut self,
        x: ValueId,
        p: &str,
        bias: bool,
        activation: Activation,
        residual: Option<ValueId>,
    ) -> Result<ValueId> {
        let name = format!("{p}.weight");
        let w = self.w(&name)?;
        let quantised = self.weights.get(&name).is_some_and(|t| t.desc.dtype == DType::I8);
        if self.observer.is_some() {
            let norm = self.norms.get(&x).cloned();
            self.taps.push((name.clone(), x, norm));
        }
        let step = if quantised { self.steps.and_then(|s| s.get(&name)).copied() } else { None };
        let mut inputs = vec![x, w];
        if quantised {
            // INT8 weight, dequantised with x's and the weight's steps in the GEMM's epilogue.
            inputs.push(self.w(&scale_name(&name))?);
        }
        if let Some(step) = step {
            // Static: x quantised with the calibrated per-tensor step (`a_scale` `[1]`).
            inputs[0] = self.op(Op::Quantize { scale: step }, &[x])?;
            inputs.push(self.w(&input_scale_name(&name))?);
        }
        // Otherwise (dynamic): x is quantised per token inside the op.
        if bias {
            inputs.push(self.w(&format!("{p}.bias"))?);
        }
        if let Some(r) = residual {
            inputs.push(r);
        }
        let epilogue = Epilogue { scale: 1.0, bias, activation, residual: residual.is_some() };
        if quantised {
            return self.op(Op::QGemm(QGemmSpec { epilogue, requant: None }), &inputs);
        }
        self.op(Op::Gemm(GemmSpec { trans_a: false, trans_b: true, epilogue }), &inputs)
    }

    /// `x · p.weightᵀ + p.bias`.
    pub fn linear(&mut self, x: ValueId, p: &str) -> Result<ValueId> {
        self.linear_ex(x, p, true, Activation::None, None)
    }

    /// Layer norm with `p.weight`, `p.bias`.
    pub fn layer_norm(&mut self, x: ValueId, p: &str) -> Result<ValueId> {
        let (g, b) = (self.w(&format!("{p}.weight"))?, self.w(&format!("{p}.bias"))?);
        let y = self.op(Op::LayerNorm { eps: self.eps }, &[x, g, b])?;
        if self.observer.is_some() {
            self.norms.insert(y, p.to_string());
        }
        Ok(y)
    }

    /// Multi-head attention of `q [Tq, W]` over `k`, `v` `[Tk, W]` with `heads` heads and the
    /// layout's packing, masks and bias; returns `[Tq, W]`.
    pub fn attention(
        &mut self,
        q: ValueId,
        k: ValueId,
        v: ValueId,
        heads: usize,
        mask: MaskMode,
        layout: &AttnLayout,
    ) -> Result<ValueId> {
        let (qd, kd) = (self.dims(q)?, self.dims(k)?);
        let (tq, tk, w) = (qd[0], kd[0], qd[1]);
        let dh = w / heads;
        let q3 = self.reshape(q, &[tq, heads, dh])?;
        let k3 = self.reshape(k, &[tk, heads, dh])?;
        let v3 = self.reshape(v, &[tk, heads, dh])?;
        let o = self.attention3(q3, k3, v3, mask, layout)?;
        self.reshape(o, &[tq, w])
    }

    /// The fused attention op on head-split tensors `q [Tq, H, Dh]`, `k`, `v` `[Tk, H, Dh]`.
    pub fn attention3(
        &mut self,
        q3: ValueId,
        k3: ValueId,
        v3: ValueId,
        mask: MaskMode,
        layout: &AttnLayout,
    ) -> Result<ValueId> {
        let heads = self.dims(q3)?[1];
        let spec = AttentionSpec {
            heads,
            kv_heads: heads,
            modalities: layout.modalities,
            mask,
            bias: layout.bias.is_some(),
            scale: None,
        };
        let mut inputs = vec![q3, k3, v3, layout.cu_q, layout.cu_k, layout.mod_q, layout.mod_k];
        inputs.extend(layout.bias);
        self.op(Op::FusedAttention(spec), &inputs)
    }

    /// Self-attention sub-layer of a block: `x + out(Attn(qkv(h)))` where `h = LN(x)` was
    /// computed by the caller.
    pub fn self_attention(
        &mut self,
        x: ValueId,
        h: ValueId,
        p_qkv: &str,
        p_out: &str,
        heads: usize,
        layout: &AttnLayout,
    ) -> Result<ValueId> {
        let w = self.dims(x)?[1];
        let qkv = self.linear(h, p_qkv)?;
        let q = self.slice(qkv, 1, 0, w)?;
        let k = self.slice(qkv, 1, w, 2 * w)?;
        let v = self.slice(qkv, 1, 2 * w, 3 * w)?;
        let a = self.attention(q, k, v, heads, MaskMode::Full, layout)?;
        self.linear_ex(a, p_out, true, Activation::None, Some(x))
    }

    /// The MLP sub-layer: `x + fc2(GELU(fc1(LN(x; p.ln))))`.
    pub fn mlp(&mut self, x: ValueId, p: &str, ln: &str) -> Result<ValueId> {
        let h = self.layer_norm(x, &format!("{p}.{ln}"))?;
        let h = self.linear_ex(h, &format!("{p}.mlp.fc1"), true, Activation::Gelu, None)?;
        self.linear_ex(h, &format!("{p}.mlp.fc2"), true, Activation::None, Some(x))
    }

    /// The pre-LN transformer block `p` over `x [T, W]`.
    pub fn block(&mut self, x: ValueId, p: &str, heads: usize, layout: &AttnLayout) -> Result<ValueId> {
        let h = self.layer_norm(x, &format!("{p}.ln1"))?;
        let x = self.self_attention(x, h, &format!("{p}.attn.qkv"), &format!("{p}.attn.out"), heads, layout)?;
        self.mlp(x, p, "ln2")
    }

    /// Packing inputs for `lengths` sequences of one modality each (ids `modality`), the same
    /// for queries and keys.
    pub fn layout(&mut self, lengths: &[usize], modality_ids: &[i8], modalities: usize) -> Result<AttnLayout> {
        let cu = cu_seqlens(lengths)?;
        let cu = self.ids(&cu)?;
        let m = self.ids8(modality_ids)?;
        Ok(AttnLayout { cu_q: cu, cu_k: cu, mod_q: m, mod_k: m, modalities, bias: None })
    }

    /// Mark outputs, prepare a session on `backend` and run it; returns the outputs on the
    /// device, in the order given.
    pub fn run(mut self, backend: &Arc<dyn Backend>, outputs: &[ValueId]) -> Result<Vec<Tensor>> {
        for o in outputs {
            self.g.output(*o)?;
        }
        let taps = self.tap_outputs()?;
        let session = Session::new(backend.clone(), self.g, SessionOptions::default())?;
        let mut owned = Vec::new();
        for b in &self.bindings {
            if let Binding::Data(h) = b {
                owned.push(backend.to_device(h)?);
            }
        }
        let mut uploaded = owned.iter();
        let mut inputs: Vec<&Tensor> = Vec::with_capacity(self.bindings.len());
        for b in &self.bindings {
            inputs.push(match b {
                Binding::Weight(name) => {
                    self.weights.get(name).ok_or_else(|| Error::Weights(format!("tensor '{name}' is missing")))?
                }
                Binding::Device(t) => t,
                Binding::Data(_) => {
                    uploaded.next().ok_or_else(|| Error::Request("internal: input binding lost".into()))?
                }
            });
        }
        let mut out = session.run(&inputs)?;
        if let Some(observer) = self.observer {
            let tapped = out.split_off(outputs.len());
            for ((name, norm, channels), t) in taps.iter().zip(&tapped) {
                observer.record(name, *channels, &to_f32(backend, t)?, norm.as_deref())?;
            }
        }
        Ok(out)
    }

    /// While calibrating: mark a copy of every recorded `Linear` input as an extra output
    /// (after the asked ones), and tell the observer which layer norms' outputs are also read
    /// by something other than a recorded `Linear` (those cannot absorb a smoothing factor).
    fn tap_outputs(&mut self) -> Result<Vec<(String, Option<String>, usize)>> {
        let Some(observer) = self.observer else { return Ok(Vec::new()) };
        let uses = self.g.use_counts();
        for (v, norm) in &self.norms {
            let linear_reads = self.taps.iter().filter(|t| t.1 == *v).count();
            if uses.get(v.0).copied().unwrap_or(0) != linear_reads {
                observer.norm_shared(norm)?;
            }
        }
        let mut taps = Vec::with_capacity(self.taps.len());
        for (name, x, norm) in std::mem::take(&mut self.taps) {
            let channels = self.dims(x)?.last().copied().unwrap_or(0);
            // A copy, so a graph input or an already-marked output can be recorded too.
            let copy = self.op(Op::Scale { factor: 1.0 }, &[x])?;
            self.g.output(copy)?;
            taps.push((name, norm, channels));
        }
        Ok(taps)
    }
}

/// `cu_seqlens` (`[0, l0, l0 + l1, …]`) of packed sequences, as i32.
pub fn cu_seqlens(lengths: &[usize]) -> Result<Vec<i32>> {
    let mut cu = Vec::with_capacity(lengths.len() + 1);
    let mut acc = 0usize;
    cu.push(0);
    for &l in lengths {
        acc += l;
        cu.push(i32::try_from(acc).map_err(|_| Error::Request(format!("{acc} tokens exceed the i32 range")))?);
    }
    Ok(cu)
}

/// Download a tensor as f32 values.
pub fn to_f32(backend: &Arc<dyn Backend>, t: &Tensor) -> Result<Vec<f32>> {
    let h = backend.to_host(t)?;
    if !matches!(h.desc.dtype, DType::F32 | DType::F16) {
        return Err(Error::Request(format!("internal: expected an f32 or f16 output, got {}", h.desc.dtype)));
    }
    Ok(h.to_f32())
}

/// `t` (f32) stored as f16.
pub fn to_f16(t: &HostTensor) -> HostTensor {
    let bytes: Vec<u8> = t.to_f32().iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
    HostTensor::from_bytes(omnifuse_core::TensorDesc::new(t.desc.shape.clone(), DType::F16), bytes)
        .expect("two bytes per element of the same shape always fit")
}

/// A host f32 tensor.
pub fn host_f32(shape: &[usize], values: &[f32]) -> Result<HostTensor> {
    Ok(HostTensor::from_slice(shape, values)?)
}
