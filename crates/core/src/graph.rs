//! The graph IR: values with static shapes, produced by graph inputs, constants (weights) or
//! nodes. Nodes are kept in topological order by construction: a node may only use values
//! that already exist, so the order they were added in is a valid execution order.

use crate::error::{Error, Result};
use crate::op::Op;
use crate::tensor::{HostTensor, TensorDesc};

/// Index of a value in its graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub usize);

/// Index of a node in its graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// Where a value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The `i`-th graph input, bound at run time.
    Input(usize),
    /// The `i`-th constant, uploaded once.
    Constant(usize),
    /// The output of a node.
    Node(NodeId),
}

/// A tensor-valued edge of the graph.
#[derive(Clone, Debug)]
pub struct Value {
    /// Static shape and dtype.
    pub desc: TensorDesc,
    /// Producer.
    pub source: Source,
}

/// One op applied to values.
#[derive(Clone, Debug)]
pub struct Node {
    /// The op.
    pub op: Op,
    /// Its inputs, in the op's order.
    pub inputs: Vec<ValueId>,
    /// Its output.
    pub output: ValueId,
}

/// A static-shape dataflow graph.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    values: Vec<Value>,
    nodes: Vec<Node>,
    inputs: Vec<ValueId>,
    constants: Vec<HostTensor>,
    outputs: Vec<ValueId>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declare a graph input.
    pub fn input(&mut self, desc: TensorDesc) -> ValueId {
        let id = ValueId(self.values.len());
        self.values.push(Value { desc, source: Source::Input(self.inputs.len()) });
        self.inputs.push(id);
        id
    }

    /// Add a constant (a weight), uploaded once when a session is created.
    pub fn constant(&mut self, t: HostTensor) -> ValueId {
        let id = ValueId(self.values.len());
        self.values.push(Value { desc: t.desc.clone(), source: Source::Constant(self.constants.len()) });
        self.constants.push(t);
        id
    }

    /// Apply `op` to existing values; validates shapes and dtypes now.
    pub fn op(&mut self, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        let mut descs = Vec::with_capacity(inputs.len());
        for v in inputs {
            descs.push(&self.value(*v)?.desc);
        }
        let desc = op.infer(&descs)?;
        let id = ValueId(self.values.len());
        self.values.push(Value { desc, source: Source::Node(NodeId(self.nodes.len())) });
        self.nodes.push(Node { op, inputs: inputs.to_vec(), output: id });
        Ok(id)
    }

    /// Mark a value as a graph output.
    pub fn output(&mut self, v: ValueId) -> Result<()> {
        self.value(v)?;
        self.outputs.push(v);
        Ok(())
    }

    /// A value, or an error for an id that is not in this graph.
    pub fn value(&self, v: ValueId) -> Result<&Value> {
        self.values
            .get(v.0)
            .ok_or_else(|| Error::Graph(format!("value {} does not exist (graph has {})", v.0, self.values.len())))
    }

    /// All values.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Nodes in execution order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Graph inputs in binding order.
    pub fn inputs(&self) -> &[ValueId] {
        &self.inputs
    }

    /// Constants in declaration order.
    pub fn constants(&self) -> &[HostTensor] {
        &self.constants
    }

    /// Graph outputs.
    pub fn outputs(&self) -> &[ValueId] {
        &self.outputs
    }

    /// How many nodes read each value (graph outputs count as one reader).
    pub fn use_counts(&self) -> Vec<usize> {
        let mut uses = vec![0usize; self.values.len()];
        for n in &self.nodes {
            for v in &n.inputs {
                uses[v.0] += 1;
            }
        }
        for v in &self.outputs {
            uses[v.0] += 1;
        }
        uses
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    #[test]
    fn rejects_unknown_values_and_bad_shapes() {
        let mut g = Graph::new();
        let a = g.input(TensorDesc::new([2, 3], DType::F32));
        assert!(g.op(Op::Gelu, &[ValueId(7)]).is_err());
        let b = g.input(TensorDesc::new([4], DType::F32));
        let err = g.op(Op::Add, &[a, b]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("[4]") && err.contains("[2, 3]"), "{err}");
        assert!(g.output(ValueId(99)).is_err());
    }
}
