//! Fusion pass: folds the pointwise ops that follow a GEMM into its epilogue, so the output
//! is written once instead of once per op: `Scale`, then a bias `Add` (rhs `[N]`), then
//! `Gelu`/`Relu`, then a residual `Add` (same shape) — any prefix of that chain, in that order.
//!
//! A step folds only when the GEMM's result has exactly one reader and is not a graph output.
//! The fused node takes the place of the last op it absorbed, which keeps the order
//! topological: an operand the epilogue gains (bias, residual) was computed before that op.

use std::collections::HashMap;

use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, Source, ValueId};
use crate::infer::activation_of;
use crate::op::{Activation, GemmSpec, Op};
use crate::shape::Shape;

struct Pending {
    op: Op,
    inputs: Vec<ValueId>,
    output: ValueId,
}

/// Try to fold `next` (reading the GEMM's result `g`) into `spec`; returns the extra operand.
fn fold(graph: &Graph, spec: &mut GemmSpec, g: ValueId, next: &Pending) -> Option<Option<ValueId>> {
    let ep = &mut spec.epilogue;
    let untouched_after_scale = !ep.bias && ep.activation == Activation::None && !ep.residual;
    let g_desc = &graph.values()[g.0].desc;
    match &next.op {
        Op::Scale { factor } if untouched_after_scale => {
            ep.scale *= factor;
            Some(None)
        }
        Op::Add if untouched_after_scale && next.inputs[0] == g && next.inputs[1] != g => {
            let rhs = &graph.values()[next.inputs[1].0].desc;
            if rhs.shape == Shape::from([g_desc.shape.last()]) {
                ep.bias = true;
                Some(Some(next.inputs[1]))
            } else if rhs.shape == g_desc.shape {
                ep.residual = true;
                Some(Some(next.inputs[1]))
            } else {
                None
            }
        }
        op if activation_of(op).is_some() && ep.activation == Activation::None && !ep.residual => {
            ep.activation = activation_of(op).unwrap_or_default();
            Some(None)
        }
        Op::Add if !ep.residual && next.inputs.contains(&g) && next.inputs[0] != next.inputs[1] => {
            let other = if next.inputs[0] == g { next.inputs[1] } else { next.inputs[0] };
            if graph.values()[other.0].desc.shape == g_desc.shape {
                ep.residual = true;
                Some(Some(other))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Fold GEMM epilogues; returns the new graph and how many ops were folded away.
pub fn fuse_gemm_epilogues(graph: &Graph) -> Result<(Graph, usize)> {
    let mut nodes: Vec<Pending> = graph
        .nodes()
        .iter()
        .map(|n| Pending { op: n.op.clone(), inputs: n.inputs.clone(), output: n.output })
        .collect();
    let is_output: Vec<bool> = {
        let mut v = vec![false; graph.values().len()];
        for o in graph.outputs() {
            v[o.0] = true;
        }
        v
    };
    let mut folded = 0;
    loop {
        let mut readers: HashMap<ValueId, Vec<usize>> = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            for v in &n.inputs {
                readers.entry(*v).or_default().push(i);
            }
        }
        let mut change = None;
        for (i, n) in nodes.iter().enumerate() {
            let Op::Gemm(spec) = &n.op else { continue };
            if graph.values()[n.output.0].desc.dtype == DType::I32 || is_output[n.output.0] {
                continue;
            }
            let Some(r) = readers.get(&n.output) else { continue };
            if r.len() != 1 || nodes[r[0]].inputs.iter().filter(|v| **v == n.output).count() != 1 {
                continue;
            }
            let j = r[0];
            let mut spec = *spec;
            if let Some(extra) = fold(graph, &mut spec, n.output, &nodes[j]) {
                change = Some((i, j, spec, extra));
                break;
            }
        }
        let Some((i, j, spec, extra)) = change else { break };
        let mut inputs = nodes[i].inputs.clone();
        inputs.extend(extra);
        nodes[j] = Pending { op: Op::Gemm(spec), inputs, output: nodes[j].output };
        nodes.remove(i);
        folded += 1;
    }
    Ok((rebuild(graph, &nodes)?, folded))
}

fn rebuild(graph: &Graph, nodes: &[Pending]) -> Result<Graph> {
    let mut g = Graph::new();
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    for (old, v) in graph.values().iter().enumerate() {
        match v.source {
            Source::Input(_) => {
                map.insert(ValueId(old), g.input(v.desc.clone()));
            }
            Source::Constant(c) => {
                map.insert(ValueId(old), g.constant(graph.constants()[c].clone()));
            }
            Source::Node(_) => {}
        }
    }
    for n in nodes {
        let ins: Vec<ValueId> = n.inputs.iter().map(|v| map[v]).collect();
        let out = g.op(n.op.clone(), &ins)?;
        map.insert(n.output, out);
    }
    for o in graph.outputs() {
        g.output(map[o])?;
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::TensorDesc;

    #[test]
    fn folds_bias_gelu_residual_into_one_gemm() {
        let mut g = Graph::new();
        let x = g.input(TensorDesc::new([8, 16], DType::F32));
        let w = g.input(TensorDesc::new([16, 16], DType::F32));
        let b = g.input(TensorDesc::new([16], DType::F32));
        let mm = g.op(Op::Gemm(GemmSpec::default()), &[x, w]).expect("gemm");
        let s = g.op(Op::Scale { factor: 0.5 }, &[mm]).expect("scale");
        let y = g.op(Op::Add, &[s, b]).expect("bias");
        let a = g.op(Op::Gelu, &[y]).expect("gelu");
        let r = g.op(Op::Add, &[x, a]).expect("residual");
        g.output(r).expect("out");
        let (f, n) = fuse_gemm_epilogues(&g).expect("fuse");
        assert_eq!(n, 4);
        assert_eq!(f.nodes().len(), 1);
        let Op::Gemm(spec) = &f.nodes()[0].op else { panic!("not a gemm") };
        assert_eq!(spec.epilogue.scale, 0.5);
        assert!(spec.epilogue.bias && spec.epilogue.residual);
        assert_eq!(spec.epilogue.activation, Activation::Gelu);
        assert_eq!(f.nodes()[0].inputs.len(), 4);
    }

    #[test]
    fn does_not_fold_a_result_with_two_readers() {
        let mut g = Graph::new();
        let x = g.input(TensorDesc::new([4, 4], DType::F32));
        let mm = g.op(Op::Gemm(GemmSpec::default()), &[x, x]).expect("gemm");
        let a = g.op(Op::Gelu, &[mm]).expect("gelu");
        let b = g.op(Op::Add, &[a, mm]).expect("add");
        g.output(b).expect("out");
        let (f, n) = fuse_gemm_epilogues(&g).expect("fuse");
        assert_eq!(n, 0);
        assert_eq!(f.nodes().len(), 3);
    }
}
