//! Graph execution: a [`Session`] fuses and plans a graph once, uploads its constants, keeps
//! its intermediate slots, and runs it on new inputs as often as asked.

use std::sync::Arc;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::fusion::fuse_gemm_epilogues;
use crate::graph::{Graph, Source};
use crate::planner::{MemoryPlan, plan};
use crate::tensor::{HostTensor, Tensor};

/// Launch every node of `graph` in order; `values` holds a tensor per value.
pub fn launch_in_order<B: Backend + ?Sized>(backend: &B, graph: &Graph, values: &[Tensor]) -> Result<()> {
    if values.len() != graph.values().len() {
        return Err(Error::Graph(format!(
            "execute got {} tensors for a graph of {} values",
            values.len(),
            graph.values().len()
        )));
    }
    let timed = crate::profile::enabled();
    for n in graph.nodes() {
        let ins: Vec<&Tensor> = n.inputs.iter().map(|v| &values[v.0]).collect();
        let t0 = timed.then(std::time::Instant::now);
        backend.launch(&n.op, &ins, &values[n.output.0])?;
        if let Some(t0) = t0 {
            crate::profile::record(n.op.name(), t0.elapsed());
        }
    }
    Ok(())
}

/// Options for building a session.
#[derive(Clone, Copy, Debug)]
pub struct SessionOptions {
    /// Run the GEMM-epilogue fusion pass.
    pub fuse: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions { fuse: true }
    }
}

/// A graph prepared for one backend.
pub struct Session {
    backend: Arc<dyn Backend>,
    graph: Graph,
    plan: MemoryPlan,
    constants: Vec<Tensor>,
    slots: Vec<crate::buffer::Buffer>,
    folded: usize,
}

impl Session {
    /// Fuse (if asked), plan, upload constants and allocate the intermediate slots.
    pub fn new(backend: Arc<dyn Backend>, graph: Graph, opts: SessionOptions) -> Result<Self> {
        let (graph, folded) = if opts.fuse { fuse_gemm_epilogues(&graph)? } else { (graph, 0) };
        let plan = plan(&graph);
        let constants = graph.constants().iter().map(|c| backend.to_device_constant(c)).collect::<Result<Vec<_>>>()?;
        let slots = plan.slot_bytes.iter().map(|&b| backend.alloc(b)).collect::<Result<Vec<_>>>()?;
        Ok(Session { backend, graph, plan, constants, slots, folded })
    }

    /// The graph as run (after fusion).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The memory plan.
    pub fn plan(&self) -> &MemoryPlan {
        &self.plan
    }

    /// How many ops the fusion pass folded away.
    pub fn folded(&self) -> usize {
        self.folded
    }

    /// Run on device tensors, one per graph input; returns new tensors for the outputs.
    pub fn run(&self, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
        let g = &self.graph;
        if inputs.len() != g.inputs().len() {
            return Err(Error::Graph(format!("expected {} input(s), got {}", g.inputs().len(), inputs.len())));
        }
        let mut outputs = Vec::with_capacity(g.outputs().len());
        let mut values = Vec::with_capacity(g.values().len());
        for (i, v) in g.values().iter().enumerate() {
            let t = match v.source {
                Source::Input(k) => {
                    if inputs[k].desc != v.desc {
                        return Err(Error::shape(
                            "graph input",
                            format!("input {k} is {}, expected {}", inputs[k].desc, v.desc),
                        ));
                    }
                    inputs[k].clone()
                }
                Source::Constant(c) => self.constants[c].clone(),
                Source::Node(_) => match self.plan.slot_of[i] {
                    Some(s) => Tensor::view(self.slots[s].clone(), v.desc.clone())?,
                    None => self.backend.empty(&v.desc)?,
                },
            };
            values.push(t);
        }
        self.backend.execute(g, &values)?;
        for o in g.outputs() {
            outputs.push(values[o.0].clone());
        }
        Ok(outputs)
    }

    /// Upload host inputs, run, and download the outputs.
    pub fn run_host(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let dev = inputs.iter().map(|h| self.backend.to_device(h)).collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Tensor> = dev.iter().collect();
        let outs = self.run(&refs)?;
        outs.iter().map(|t| self.backend.to_host(t)).collect()
    }
}
