//! Fast fused attention: flash-style online softmax that never materialises the score matrix.
//!
//! Algorithm: K is transposed once per launch into contiguous `Dh × KB` tiles per kv head and
//! key block (linear memory, about the size of K). The queries of each sequence are cut into chunks of `QC` rows —
//! one parallel task each, writing only its own rows of the output. For each head, a chunk
//! walks the sequence's keys in blocks of `KB`: for every query of the chunk the block's
//! scores come from broadcast FMAs over 16-key slices (no horizontal sums), masked keys
//! become −∞ and the pair bias is added, the running max moves, the normaliser is rescaled
//! by `e^(m_old − m_new)`, and a 4-row register-blocked kernel does `acc = acc·corr + P·V`
//! for the whole block (a block no query sees is skipped). Memory: K's size once,
//! plus `QC·Dh + O(KB)` floats per task, whatever the sequence length — never the N × N
//! scores. A query that saw no key writes zeros.

use omnifuse_core::attention::visible_block;
use rayon::prelude::*;

use super::math::exp;
use crate::features::Isa;
use crate::kernels::FusedAttentionArgs;

/// Queries per task.
const QC: usize = 16;
/// Keys per block.
const KB: usize = 64;

/// Reduce `x` with `f` over 16 independent lanes (a single running value is a serial chain
/// the compiler may not reorder, which also keeps the loop scalar).
#[inline(always)]
fn lanes(x: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..16 {
            acc[l] = f(acc[l], c[l]);
        }
    }
    tail.iter().chain(acc.iter()).fold(init, |a, &b| f(a, b))
}

/// Scores of the chunk's queries against one key tile: `s[r][t] = q_r · tile[·, t]`, with
/// `q` the chunk's queries for this head packed as `QC × Dh` (zero rows past `rows`) and the
/// tile `Dh × KB`. Register-blocked like a GEMM micro-kernel: `R` queries × 32 keys = `2R`
/// vector accumulators (R = 8 on AVX-512's 32 registers, 4 elsewhere), so each tile vector
/// loaded is used by `R` queries. `mul_add` compiles to FMA (Rust never fuses a multiply and
/// an add on its own).
#[inline(always)]
fn scores<const R: usize>(q: &[f32], rows: usize, dh: usize, tile: &[f32], s: &mut [[f32; KB]; QC]) {
    for r0 in (0..rows).step_by(R) {
        for half in 0..KB / 32 {
            let mut a0 = [[0.0f32; 16]; R];
            let mut a1 = [[0.0f32; 16]; R];
            for d in 0..dh {
                let c0 = &tile[d * KB + half * 32..][..16];
                let c1 = &tile[d * KB + half * 32 + 16..][..16];
                for u in 0..R {
                    let qd = q[(r0 + u) * dh + d];
                    for l in 0..16 {
                        a0[u][l] = qd.mul_add(c0[l], a0[u][l]);
                        a1[u][l] = qd.mul_add(c1[l], a1[u][l]);
                    }
                }
            }
            // All R rows, even past `rows` (their queries are zero): a store loop of constant
            // length lets the accumulators live in registers, not on the stack.
            for u in 0..R {
                s[r0 + u][half * 32..half * 32 + 16].copy_from_slice(&a0[u]);
                s[r0 + u][half * 32 + 16..half * 32 + 32].copy_from_slice(&a1[u]);
            }
        }
    }
}

/// K transposed once per launch into key blocks: for each kv head and each block of `KB` keys
/// of a sequence, a contiguous `Dh × KB` tile (zero-padded past the sequence's end). A query
/// chunk then reads each tile as 16 KiB of consecutive memory. Linear memory — about the size
/// of K — instead of a transpose per query chunk.
struct KeysT {
    data: Vec<f32>,
    /// Index of each sequence's first block.
    first: Vec<usize>,
    /// Blocks per kv head.
    blocks: usize,
    head_dim: usize,
}

impl KeysT {
    fn new(a: &FusedAttentionArgs) -> Self {
        let (hkv, dh) = (a.spec.kv_heads, a.head_dim);
        let mut first = Vec::with_capacity(a.seq_k.len());
        let mut blocks = 0;
        for &(_, lk) in a.seq_k {
            first.push(blocks);
            blocks += lk.div_ceil(KB);
        }
        let mut data = vec![0.0f32; hkv * blocks * dh * KB];
        let transpose = |(h, dst): (usize, &mut [f32])| {
            for (s, &(k0, lk)) in a.seq_k.iter().enumerate() {
                for kb in (0..lk).step_by(KB) {
                    let tile = &mut dst[(first[s] + kb / KB) * dh * KB..][..dh * KB];
                    for t in 0..KB.min(lk - kb) {
                        let row = &a.k[((k0 + kb + t) * hkv + h) * dh..][..dh];
                        for d in 0..dh {
                            tile[d * KB + t] = row[d];
                        }
                    }
                }
            }
        };
        let per_head = (blocks * dh * KB).max(1);
        if hkv > 1 && per_head > super::math::GRAIN {
            data.par_chunks_mut(per_head).enumerate().for_each(transpose);
        } else {
            data.chunks_mut(per_head).enumerate().for_each(transpose);
        }
        KeysT { data, first, blocks, head_dim: dh }
    }

    /// The `Dh × KB` tile of kv head `h`, sequence `s`, holding keys `kb..kb + KB`.
    fn tile(&self, h: usize, s: usize, kb: usize) -> &[f32] {
        let b = h * self.blocks + self.first[s] + kb / KB;
        &self.data[b * self.head_dim * KB..][..self.head_dim * KB]
    }
}

/// `acc[r] = acc[r]·corr[r] + Σ_t p[r][t]·V[t]` for the chunk's rows (padded to a multiple of
/// `R` with zero probabilities): a GEMM micro-kernel of `R` rows × 32 columns of the head
/// dimension (16 at a time for a remainder), so each V vector loaded feeds `R` FMAs and the
/// accumulators stay in registers across the key block instead of being loaded and stored per
/// key.
#[inline(always)]
fn weighted_values<const R: usize>(
    p: &[[f32; KB]; QC],
    corr: &[f32; QC],
    rows: usize,
    v: &[f32],
    v_stride: usize,
    kn: usize,
    dh: usize,
    acc: &mut [f32],
) {
    for r0 in (0..rows).step_by(R) {
        let mut c0 = 0;
        while c0 + 32 <= dh {
            let mut a0 = [[0.0f32; 16]; R];
            let mut a1 = [[0.0f32; 16]; R];
            for u in 0..R {
                let row = &acc[(r0 + u) * dh + c0..][..32];
                for l in 0..16 {
                    a0[u][l] = row[l] * corr[r0 + u];
                    a1[u][l] = row[16 + l] * corr[r0 + u];
                }
            }
            for t in 0..kn {
                let v0 = &v[t * v_stride + c0..][..16];
                let v1 = &v[t * v_stride + c0 + 16..][..16];
                for u in 0..R {
                    let pu = p[r0 + u][t];
                    for l in 0..16 {
                        a0[u][l] = pu.mul_add(v0[l], a0[u][l]);
                        a1[u][l] = pu.mul_add(v1[l], a1[u][l]);
                    }
                }
            }
            for u in 0..R {
                acc[(r0 + u) * dh + c0..][..16].copy_from_slice(&a0[u]);
                acc[(r0 + u) * dh + c0 + 16..][..16].copy_from_slice(&a1[u]);
            }
            c0 += 32;
        }
        while c0 < dh {
            let w = 16.min(dh - c0);
            let mut a0 = [[0.0f32; 16]; R];
            for u in 0..R {
                let row = &acc[(r0 + u) * dh + c0..][..w];
                for l in 0..w {
                    a0[u][l] = row[l] * corr[r0 + u];
                }
            }
            for t in 0..kn {
                let vt = &v[t * v_stride + c0..][..w];
                for u in 0..R {
                    let pu = p[r0 + u][t];
                    for l in 0..w {
                        a0[u][l] = pu.mul_add(vt[l], a0[u][l]);
                    }
                }
            }
            for u in 0..R {
                acc[(r0 + u) * dh + c0..][..w].copy_from_slice(&a0[u][..w]);
            }
            c0 += w;
        }
    }
}

/// One task: query rows `r0..r0 + rows` of sequence `s`, all heads, into `out` (those rows).
/// Always inlined, so [`run_chunk`] compiles it once per SIMD level.
#[inline(always)]
fn chunk<const R: usize>(a: &FusedAttentionArgs, kt: &KeysT, s: usize, r0: usize, rows: usize, out: &mut [f32]) {
    let spec = &a.spec;
    let (h_n, dh, m) = (spec.heads, a.head_dim, spec.modalities);
    let group = spec.heads / spec.kv_heads;
    let ((q0, lq), (k0, lk)) = (a.seq_q[s], a.seq_k[s]);
    // Rows padded to a multiple of R for the kernels; padded rows keep zero weights.
    let padded = rows.div_ceil(R) * R;
    let mut acc = vec![0.0f32; padded * dh];
    let mut run_max = [f32::NEG_INFINITY; QC];
    let mut run_sum = [0.0f32; QC];
    let mut corr = [1.0f32; QC];
    let mut tile_scores = [[0.0f32; KB]; QC];
    let mut qbuf = vec![0.0f32; QC * dh];
    let mut mk = [0usize; KB];
    let mut keep = [false; KB];
    let v_stride = spec.kv_heads * dh;
    for h in 0..h_n {
        let kvh = h / group;
        acc.fill(0.0);
        run_max.fill(f32::NEG_INFINITY);
        run_sum.fill(0.0);
        for r in 0..rows {
            qbuf[r * dh..(r + 1) * dh].copy_from_slice(&a.q[((q0 + r0 + r) * h_n + h) * dh..][..dh]);
        }
        for kb in (0..lk).step_by(KB) {
            let kn = KB.min(lk - kb);
            for t in 0..kn {
                mk[t] = a.mod_k[k0 + kb + t] as usize;
            }
            scores::<R>(&qbuf, rows, dh, kt.tile(kvh, s, kb), &mut tile_scores);
            let mut any = false;
            for (r, p) in tile_scores.iter_mut().enumerate().take(rows) {
                let i = r0 + r;
                let mq = a.mod_q[q0 + i] as usize;
                visible_block(spec.mask, a.pairs, m, i, kb, lq, lk, mq, &mk[..kn], &mut keep);
                match a.bias.map(|b| &b[(h * m + mq) * m..(h * m + mq + 1) * m]) {
                    Some(row) => (0..kn).for_each(|t| p[t] = p[t] * a.scale + row[mk[t]]),
                    None => p[..kn].iter_mut().for_each(|x| *x *= a.scale),
                }
                for t in 0..kn {
                    if !keep[t] {
                        p[t] = f32::NEG_INFINITY;
                    }
                }
                let block_max = lanes(&p[..kn], f32::NEG_INFINITY, f32::max);
                if block_max == f32::NEG_INFINITY {
                    p[..kn].fill(0.0);
                    corr[r] = 1.0;
                    continue;
                }
                any = true;
                let new_max = run_max[r].max(block_max);
                corr[r] = if run_max[r] == f32::NEG_INFINITY { 0.0 } else { exp(run_max[r] - new_max) };
                run_max[r] = new_max;
                for x in p[..kn].iter_mut() {
                    // exp of −∞ − max saturates to ~1e-38 in the fast exp: masked keys are zeroed.
                    *x = if *x == f32::NEG_INFINITY { 0.0 } else { exp(*x - new_max) };
                }
                let block_sum = lanes(&p[..kn], 0.0, |a, b| a + b);
                run_sum[r] = run_sum[r] * corr[r] + block_sum;
            }
            if !any {
                continue;
            }
            for p in tile_scores.iter_mut().take(padded).skip(rows) {
                p[..kn].fill(0.0);
            }
            let v = &a.v[((k0 + kb) * spec.kv_heads + kvh) * dh..];
            weighted_values::<R>(&tile_scores, &corr, padded, v, v_stride, kn, dh, &mut acc);
        }
        for r in 0..rows {
            let dst = &mut out[(r * h_n + h) * dh..][..dh];
            if run_sum[r] > 0.0 {
                let inv = 1.0 / run_sum[r];
                dst.iter_mut().zip(&acc[r * dh..(r + 1) * dh]).for_each(|(d, &x)| *d = x * inv);
            } else {
                dst.fill(0.0);
            }
        }
    }
}

/// [`chunk`] compiled for the active SIMD level. The body is inlined into a function with the
/// level's features enabled (a closure around it is too large to be inlined into
/// [`super::math::simd`]'s wrapper, and would stay baseline code with `fmaf` calls).
fn run_chunk(a: &FusedAttentionArgs, kt: &KeysT, s: usize, r0: usize, rows: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
        fn avx512(a: &FusedAttentionArgs, kt: &KeysT, s: usize, r0: usize, rows: usize, out: &mut [f32]) {
            chunk::<8>(a, kt, s, r0, rows, out)
        }
        #[target_feature(enable = "avx2,fma,f16c")]
        fn avx2(a: &FusedAttentionArgs, kt: &KeysT, s: usize, r0: usize, rows: usize, out: &mut [f32]) {
            chunk::<4>(a, kt, s, r0, rows, out)
        }
        match Isa::active() {
            // SAFETY: `Isa::active` returns a level only when all its features were detected.
            Isa::Avx512 => return unsafe { avx512(a, kt, s, r0, rows, out) },
            // SAFETY: as above.
            Isa::Avx2 => return unsafe { avx2(a, kt, s, r0, rows, out) },
            Isa::Portable => {}
        }
    }
    chunk::<4>(a, kt, s, r0, rows, out)
}

/// Fused varlen attention, chunks of queries in parallel.
pub fn fused_attention(a: &FusedAttentionArgs, out: &mut [f32]) {
    if super::attention_decode::applies(a) {
        return super::attention_decode::fused_attention_decode(a, out);
    }
    let row = a.spec.heads * a.head_dim;
    if row == 0 {
        return;
    }
    // Cut the output into (sequence, first row, rows) pieces, in order, each its own slice.
    let mut pieces = Vec::new();
    let mut rest = &mut out[..];
    for (s, &(_, lq)) in a.seq_q.iter().enumerate() {
        for r0 in (0..lq).step_by(QC) {
            let rows = QC.min(lq - r0);
            let (head, tail) = rest.split_at_mut(rows * row);
            pieces.push((s, r0, rows, head));
            rest = tail;
        }
    }
    let kt = KeysT::new(a);
    let work = a.seq_q.iter().zip(a.seq_k).map(|(q, k)| q.1 * k.1).sum::<usize>() * row;
    if work > super::math::GRAIN && pieces.len() > 1 {
        pieces.into_par_iter().for_each(|(s, r0, rows, o)| run_chunk(a, &kt, s, r0, rows, o));
    } else {
        for (s, r0, rows, o) in pieces {
            run_chunk(a, &kt, s, r0, rows, o);
        }
    }
}
