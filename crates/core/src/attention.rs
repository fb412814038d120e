//! Semantics of the fused cross-modal attention op — the one definition every backend
//! implements.
//!
//! Per head h (query heads `heads`, key/value heads `kv_heads` dividing it: query head h reads
//! kv head `h / (heads / kv_heads)`, grouped-query attention):
//!
//! `O = softmax(Q·Kᵀ·scale + B) · V`
//!
//! over a *packed* batch: Q is `[total_q, heads, head_dim]`, K and V `[total_k, kv_heads,
//! head_dim]`; sequence s owns query rows `cu_q[s]..cu_q[s+1]` and key rows
//! `cu_k[s]..cu_k[s+1]` (i32, `batch + 1` entries from 0, non-decreasing — the FlashAttention
//! convention). Sequences never see each other. Every token carries a modality id (i8, `0..M`).
//! `B` is an optional learned bias per head and (query modality, key modality) pair,
//! `[heads, M, M]` f32. Which keys a query sees is [`visible`]. A query that sees no key
//! outputs zeros — never NaN. A query row of length 1 against a long key sequence is the
//! decode step against a KV cache.

/// Which keys of its own sequence a query may attend to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaskMode {
    /// Every key of the sequence.
    Full,
    /// Only keys of the query's own modality.
    Intra,
    /// Only keys of other modalities, plus the query's own position.
    Cross,
    /// Keys whose modality the allowed-pair matrix permits for the query's modality (an i8
    /// `[M, M]` input, non-zero = allowed).
    Pairs,
    /// Keys at or before the query's position, bottom-right aligned: query i of Lq sees key j
    /// of Lk when `j ≤ i + (Lk − Lq)`.
    Causal,
}

impl MaskMode {
    /// Every mode.
    pub const ALL: [MaskMode; 5] =
        [MaskMode::Full, MaskMode::Intra, MaskMode::Cross, MaskMode::Pairs, MaskMode::Causal];

    /// Name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MaskMode::Full => "full",
            MaskMode::Intra => "intra",
            MaskMode::Cross => "cross",
            MaskMode::Pairs => "pairs",
            MaskMode::Causal => "causal",
        }
    }
}

/// Parameters of [`crate::Op::FusedAttention`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionSpec {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (divides `heads`).
    pub kv_heads: usize,
    /// Number of modality ids M (ids are `0..M`, M ≤ 127).
    pub modalities: usize,
    /// The mask.
    pub mask: MaskMode,
    /// A bias `[heads, M, M]` input follows.
    pub bias: bool,
    /// Logit scale; `None` means `1/sqrt(head_dim)`.
    pub scale: Option<f32>,
}

/// Whether query `i` (of `lq` in its sequence, modality `mq`) sees key `j` (of `lk`,
/// modality `mk`). `pairs` is the row-major `[M, M]` allowed-pair matrix for
/// [`MaskMode::Pairs`].
#[inline]
#[allow(clippy::too_many_arguments)]
pub fn visible(
    mask: MaskMode,
    pairs: &[i8],
    m: usize,
    i: usize,
    j: usize,
    lq: usize,
    lk: usize,
    mq: usize,
    mk: usize,
) -> bool {
    let aligned = i as isize + lk as isize - lq as isize;
    match mask {
        MaskMode::Full => true,
        MaskMode::Intra => mq == mk,
        MaskMode::Cross => mq != mk || j as isize == aligned,
        MaskMode::Pairs => pairs[mq * m + mk] != 0,
        MaskMode::Causal => j as isize <= aligned,
    }
}

/// [`visible`] for a block of keys at once: `keep[t]` tells whether query `i` (modality `mq`)
/// sees key `j0 + t` (modality `mk[t]`). The same definition, laid out per mode so each loop
/// vectorises; a unit test holds the two forms equal.
#[inline]
#[allow(clippy::too_many_arguments)]
pub fn visible_block(
    mask: MaskMode,
    pairs: &[i8],
    m: usize,
    i: usize,
    j0: usize,
    lq: usize,
    lk: usize,
    mq: usize,
    mk: &[usize],
    keep: &mut [bool],
) {
    let aligned = i as isize + lk as isize - lq as isize;
    let keep = &mut keep[..mk.len()];
    match mask {
        MaskMode::Full => keep.fill(true),
        MaskMode::Intra => keep.iter_mut().zip(mk).for_each(|(k, &x)| *k = x == mq),
        MaskMode::Cross => {
            keep.iter_mut().zip(mk).enumerate().for_each(|(t, (k, &x))| *k = x != mq || (j0 + t) as isize == aligned)
        }
        MaskMode::Pairs => {
            let row = &pairs[mq * m..(mq + 1) * m];
            keep.iter_mut().zip(mk).for_each(|(k, &x)| *k = row[x] != 0)
        }
        MaskMode::Causal => keep.iter_mut().enumerate().for_each(|(t, k)| *k = (j0 + t) as isize <= aligned),
    }
}

/// The sequences of a packed batch, checked: `cu` must start at 0, not decrease and end at
/// `total`. Returns `(start, len)` per sequence.
pub fn sequences(what: &str, cu: &[i32], total: usize) -> crate::Result<Vec<(usize, usize)>> {
    let bad = |detail: String| crate::Error::invalid(format!("fused_attention: {what}: {detail}"));
    if cu.first() != Some(&0) {
        return Err(bad(format!("must start at 0, starts at {:?}", cu.first())));
    }
    let mut out = Vec::with_capacity(cu.len().saturating_sub(1));
    for (s, w) in cu.windows(2).enumerate() {
        if w[1] < w[0] {
            return Err(bad(format!("decreases at sequence {s}: {} then {}", w[0], w[1])));
        }
        out.push((w[0] as usize, (w[1] - w[0]) as usize));
    }
    if cu.last().map(|&l| l as usize) != Some(total) {
        return Err(bad(format!("ends at {:?} but there are {total} tokens", cu.last())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mask_mode_sees_what_its_definition_says() {
        // one sequence of 3 queries and 3 keys, modalities [0, 1, 0]
        let ids = [0usize, 1, 0];
        let see = |mask, pairs: &[i8], i: usize, j: usize| visible(mask, pairs, 2, i, j, 3, 3, ids[i], ids[j]);
        assert!((0..3).all(|i| (0..3).all(|j| see(MaskMode::Full, &[], i, j))));
        assert!(see(MaskMode::Intra, &[], 0, 2) && !see(MaskMode::Intra, &[], 0, 1));
        assert!(see(MaskMode::Cross, &[], 0, 1) && see(MaskMode::Cross, &[], 0, 0) && !see(MaskMode::Cross, &[], 0, 2));
        assert!(
            see(MaskMode::Causal, &[], 1, 0) && see(MaskMode::Causal, &[], 1, 1) && !see(MaskMode::Causal, &[], 1, 2)
        );
        // pairs: modality 0 may see 1 only; modality 1 may see 0 and 1
        let pairs = [0i8, 1, 1, 1];
        assert!(
            see(MaskMode::Pairs, &pairs, 0, 1)
                && !see(MaskMode::Pairs, &pairs, 0, 2)
                && see(MaskMode::Pairs, &pairs, 1, 1)
        );
        // decode: 1 query against 5 cached keys sees all of them under causal (bottom-right)
        assert!((0..5).all(|j| visible(MaskMode::Causal, &[], 1, 0, j, 1, 5, 0, 0)));
        // a longer query run than keys: the first queries see nothing
        assert!(!visible(MaskMode::Causal, &[], 1, 0, 0, 4, 2, 0, 0));
    }

    #[test]
    fn block_form_equals_the_definition() {
        let pairs = [1i8, 0, 1, 0, 1, 1, 1, 0, 0];
        let mk: Vec<usize> = (0..23).map(|t| (t * 7 + t / 5) % 3).collect();
        let mut keep = vec![false; mk.len()];
        for mask in MaskMode::ALL {
            for (i, lq, lk, j0) in
                [(0usize, 5usize, 40usize, 0usize), (4, 5, 40, 17), (3, 30, 30, 0), (0, 1, 40, 17), (2, 9, 3, 0)]
            {
                for mq in 0..3 {
                    let n = mk.len().min(lk.saturating_sub(j0));
                    visible_block(mask, &pairs, 3, i, j0, lq, lk, mq, &mk[..n], &mut keep);
                    for t in 0..n {
                        assert_eq!(
                            keep[t],
                            visible(mask, &pairs, 3, i, j0 + t, lq, lk, mq, mk[t]),
                            "{mask:?} i={i} j={}",
                            j0 + t
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn packed_batches_are_checked() {
        assert_eq!(sequences("cu", &[0, 3, 3, 7], 7).ok(), Some(vec![(0, 3), (3, 0), (3, 4)]));
        for (cu, total, want) in [(&[1, 3][..], 3, "start at 0"), (&[0, 4, 2], 2, "decreases"), (&[0, 4], 5, "ends at")]
        {
            let e = sequences("cu", cu, total).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(want), "{cu:?}: {e}");
        }
    }
}
