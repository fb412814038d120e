//! Memory planner: assigns every intermediate value a reusable buffer slot by liveness, so a
//! graph needs far less memory than one buffer per value, and reports the peak.
//!
//! Intermediates are node outputs that are not graph outputs. A value is live from the node
//! that produces it to the last node that reads it. Walking nodes in order, each output takes
//! the smallest free slot that fits (or grows the largest free one, or opens a new one); the
//! slots of inputs whose last reader is this node are freed *after* the output is placed, so
//! an op never writes over its own inputs.

use crate::graph::{Graph, Source};

/// Slot sizes are rounded up to this many bytes (a common device alignment).
pub const ALIGN: usize = 256;

/// The result of planning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// For each value: its slot, or `None` for inputs, constants and graph outputs.
    pub slot_of: Vec<Option<usize>>,
    /// Capacity of each slot in bytes.
    pub slot_bytes: Vec<usize>,
    /// Bytes of all slots together: the planned intermediate memory.
    pub peak_bytes: usize,
    /// Bytes one buffer per intermediate would take.
    pub naive_bytes: usize,
}

fn round_up(n: usize) -> usize {
    n.div_ceil(ALIGN).max(1) * ALIGN
}

/// Plan the intermediates of `graph`.
pub fn plan(graph: &Graph) -> MemoryPlan {
    let values = graph.values();
    let mut is_output = vec![false; values.len()];
    for v in graph.outputs() {
        is_output[v.0] = true;
    }
    let mut last_use = vec![None; values.len()];
    for (i, n) in graph.nodes().iter().enumerate() {
        for v in &n.inputs {
            last_use[v.0] = Some(i);
        }
    }
    let mut slot_of = vec![None; values.len()];
    let mut slot_bytes: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut naive = 0usize;
    for (i, n) in graph.nodes().iter().enumerate() {
        let out = n.output.0;
        if !is_output[out] {
            let need = round_up(values[out].desc.bytes());
            naive += need;
            let fit =
                free.iter().enumerate().filter(|&(_, &s)| slot_bytes[s] >= need).min_by_key(|&(_, &s)| slot_bytes[s]);
            let slot = match fit {
                Some((pos, _)) => free.swap_remove(pos),
                None => match free.iter().enumerate().max_by_key(|&(_, &s)| slot_bytes[s]) {
                    Some((pos, _)) => {
                        let s = free.swap_remove(pos);
                        slot_bytes[s] = need;
                        s
                    }
                    None => {
                        slot_bytes.push(need);
                        slot_bytes.len() - 1
                    }
                },
            };
            slot_of[out] = Some(slot);
        }
        for v in &n.inputs {
            if last_use[v.0] == Some(i)
                && matches!(values[v.0].source, Source::Node(_))
                && let Some(s) = slot_of[v.0]
                && !free.contains(&s)
            {
                free.push(s);
            }
        }
        // A node output nobody reads is dead at once.
        if last_use[out].is_none()
            && let Some(s) = slot_of[out]
        {
            free.push(s);
        }
    }
    let peak_bytes = slot_bytes.iter().sum();
    MemoryPlan { slot_of, slot_bytes, peak_bytes, naive_bytes: naive }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::op::Op;
    use crate::tensor::TensorDesc;

    #[test]
    fn chain_reuses_two_slots_and_never_aliases_live_values() {
        let mut g = Graph::new();
        let x = g.input(TensorDesc::new([64, 64], DType::F32));
        let mut v = x;
        let mut all = vec![];
        for _ in 0..10 {
            v = g.op(Op::Gelu, &[v]).expect("gelu");
            all.push(v);
        }
        g.output(v).expect("output");
        let p = plan(&g);
        assert_eq!(p.slot_bytes.len(), 2, "a chain needs two ping-pong slots: {p:?}");
        assert_eq!(p.peak_bytes, 2 * 64 * 64 * 4);
        assert_eq!(p.naive_bytes, 9 * 64 * 64 * 4);
        // consecutive values never share a slot
        for w in all.windows(2) {
            if let (Some(a), Some(b)) = (p.slot_of[w[0].0], p.slot_of[w[1].0]) {
                assert_ne!(a, b);
            }
        }
        assert_eq!(p.slot_of[v.0], None, "graph outputs are not planned");
    }

    #[test]
    fn values_live_across_a_branch_keep_their_slot() {
        let mut g = Graph::new();
        let x = g.input(TensorDesc::new([32], DType::F32));
        let a = g.op(Op::Gelu, &[x]).expect("a");
        let b = g.op(Op::Relu, &[a]).expect("b");
        let c = g.op(Op::Gelu, &[b]).expect("c");
        let d = g.op(Op::Add, &[c, a]).expect("d"); // a is live until here
        g.output(d).expect("out");
        let p = plan(&g);
        let (sa, sb, sc) = (p.slot_of[a.0], p.slot_of[b.0], p.slot_of[c.0]);
        assert!(sa != sb && sa != sc, "a is live while b and c exist: {p:?}");
    }
}
