//! Single kernels on host memory, for callers that want omnifuse's GEMM and fused attention
//! without a model: the operands are copied to the CPU backend (upload), the op is launched
//! through the core `Backend` trait, and the output is copied back (download). Strided
//! (leading-dimension) operands are packed on the way in and out.

use std::sync::{Arc, OnceLock};

use omnifuse_core::{AttentionSpec, Backend, GemmSpec, HostTensor, MaskMode, Op, Tensor, dtype::Element};

use crate::status::{Failure, Outcome, guard, omnifuse_status};
use crate::text::slice;

/// Mask of `omnifuse_attention_f32`: every key of the query's sequence.
pub const OMNIFUSE_MASK_FULL: i32 = 0;
/// Mask: only keys of the query's own modality.
pub const OMNIFUSE_MASK_INTRA: i32 = 1;
/// Mask: only keys of other modalities, plus the query's own position.
pub const OMNIFUSE_MASK_CROSS: i32 = 2;
/// Mask: keys whose modality the allowed-pair matrix permits for the query's modality.
pub const OMNIFUSE_MASK_PAIRS: i32 = 3;
/// Mask: keys at or before the query's position, bottom-right aligned (query i of Lq sees
/// key j of Lk when j ≤ i + Lk − Lq).
pub const OMNIFUSE_MASK_CAUSAL: i32 = 4;

/// The CPU backend the kernels run on, opened once per process.
fn backend() -> Outcome<Arc<dyn Backend>> {
    static CPU: OnceLock<Result<Arc<dyn Backend>, Failure>> = OnceLock::new();
    CPU.get_or_init(|| omnifuse_registry::open("cpu").map_err(Failure::from)).clone()
}

/// The elements a strided `rows × cols` matrix spans.
fn span(rows: usize, cols: usize, ld: usize, what: &str) -> Outcome<usize> {
    if ld < cols {
        return Err(Failure::invalid(format!("{what}: leading dimension {ld} is less than its {cols} columns")));
    }
    (rows - 1)
        .checked_mul(ld)
        .and_then(|n| n.checked_add(cols))
        .ok_or_else(|| Failure::invalid(format!("{what}: {rows} rows of stride {ld} overflow the address space")))
}

/// Pack a strided matrix densely.
fn pack<T: Copy>(src: &[T], rows: usize, cols: usize, ld: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        out.extend_from_slice(&src[r * ld..r * ld + cols]);
    }
    out
}

fn overlaps(a: (*const u8, usize), b: (*const u8, usize)) -> bool {
    let (a0, b0) = (a.0 as usize, b.0 as usize);
    a0 < b0.saturating_add(b.1) && b0 < a0.saturating_add(a.1)
}

fn upload<T: Element>(b: &Arc<dyn Backend>, shape: &[usize], data: &[T]) -> Outcome<Tensor> {
    Ok(b.to_device(&HostTensor::from_slice(shape.to_vec(), data)?)?)
}

/// `C = A·B` for row-major strided operands on the CPU backend.
///
/// # Safety
/// `a`, `b` readable and `c` writable for the spans their sizes and strides give.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm<T: Element, O: Element>(
    m: usize,
    n: usize,
    k: usize,
    a: *const T,
    lda: usize,
    b: *const T,
    ldb: usize,
    c: *mut O,
    ldc: usize,
) -> Outcome {
    if m == 0 || n == 0 || k == 0 {
        return Err(Failure::invalid(format!("gemm: M, N and K must be at least 1, got M={m} N={n} K={k}")));
    }
    let (sa, sb, sc) = (span(m, k, lda, "A")?, span(k, n, ldb, "B")?, span(m, n, ldc, "C")?);
    let bytes_c = (c.cast::<u8>().cast_const(), sc * size_of::<O>());
    if overlaps(bytes_c, (a.cast(), sa * size_of::<T>())) || overlaps(bytes_c, (b.cast(), sb * size_of::<T>())) {
        return Err(Failure::invalid("gemm: C overlaps A or B: the output must be separate memory"));
    }
    // SAFETY: readable for these spans by our contract.
    let (a, b) = unsafe { (slice(a, sa, "A")?, slice(b, sb, "B")?) };
    if c.is_null() {
        return Err(Failure::invalid("C is NULL: expected the output matrix"));
    }
    let dev = backend()?;
    let (ta, tb) = (upload(&dev, &[m, k], &pack(a, m, k, lda))?, upload(&dev, &[k, n], &pack(b, k, n, ldb))?);
    let out = dev.run_op(&Op::Gemm(GemmSpec::default()), &[&ta, &tb])?;
    let host: Vec<O> = dev.to_host(&out)?.to_vec()?;
    // SAFETY: non-NULL, writable for `sc` elements by our contract, and checked above not to
    // overlap A or B.
    let c = unsafe { std::slice::from_raw_parts_mut(c, sc) };
    for r in 0..m {
        c[r * ldc..r * ldc + n].copy_from_slice(&host[r * n..(r + 1) * n]);
    }
    Ok(())
}

/// `C = A·B` in f32: A is M×K (row `i` at `A + i·lda`), B is K×N (row stride `ldb`), C is M×N
/// (row stride `ldc`), all row-major; C is overwritten and must not overlap A or B. Runs on
/// the CPU backend's fast GEMM (all cores).
///
/// # Safety
/// `A` is readable for `(M−1)·lda + K` floats, `B` for `(K−1)·ldb + N`, `C` writable for
/// `(M−1)·ldc + N`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) -> omnifuse_status {
    // SAFETY: the same contract as ours.
    guard(|| unsafe { gemm::<f32, f32>(m, n, k, a, lda, b, ldb, c, ldc) })
}

/// `C = A·B` in IEEE half precision (elements are the f16 bit patterns as `uint16_t`),
/// accumulated in f32 and rounded once; layout as `omnifuse_gemm_f32`.
///
/// # Safety
/// As `omnifuse_gemm_f32`, in 16-bit elements.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_gemm_f16(
    m: usize,
    n: usize,
    k: usize,
    a: *const u16,
    lda: usize,
    b: *const u16,
    ldb: usize,
    c: *mut u16,
    ldc: usize,
) -> omnifuse_status {
    // `half::f16` is a transparent wrapper of its u16 bits, so the pointers cast directly.
    let (a, b, c) = (a.cast::<half::f16>(), b.cast::<half::f16>(), c.cast::<half::f16>());
    // SAFETY: the same contract as ours; f16 and u16 have the same size and alignment.
    guard(|| unsafe { gemm::<half::f16, half::f16>(m, n, k, a, lda, b, ldb, c, ldc) })
}

/// `C = A·B` for int8 operands with exact int32 accumulation and an int32 output; layout as
/// `omnifuse_gemm_f32`.
///
/// # Safety
/// As `omnifuse_gemm_f32`, with 8-bit A and B and 32-bit C.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_gemm_i8(
    m: usize,
    n: usize,
    k: usize,
    a: *const i8,
    lda: usize,
    b: *const i8,
    ldb: usize,
    c: *mut i32,
    ldc: usize,
) -> omnifuse_status {
    // SAFETY: the same contract as ours.
    guard(|| unsafe { gemm::<i8, i32>(m, n, k, a, lda, b, ldb, c, ldc) })
}

/// Shapes and options of `omnifuse_attention_f32`.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct omnifuse_attention_params {
    /// Sequences in the packed batch.
    pub batch: usize,
    /// Query rows of all sequences together (`cu_seqlens_q[batch]`).
    pub total_q: usize,
    /// Key/value rows of all sequences together (`cu_seqlens_k[batch]`).
    pub total_k: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (divides `heads`; query head h reads kv head h / (heads / kv_heads)).
    pub kv_heads: usize,
    /// Width of each head.
    pub head_dim: usize,
    /// Number of modality ids M (ids are 0..M, 1 ≤ M ≤ 127).
    pub modalities: usize,
    /// `OMNIFUSE_MASK_*`.
    pub mask: i32,
    /// Logit scale; 0 means 1/sqrt(head_dim).
    pub scale: f32,
}

fn mask_mode(code: i32) -> Outcome<MaskMode> {
    Ok(match code {
        OMNIFUSE_MASK_FULL => MaskMode::Full,
        OMNIFUSE_MASK_INTRA => MaskMode::Intra,
        OMNIFUSE_MASK_CROSS => MaskMode::Cross,
        OMNIFUSE_MASK_PAIRS => MaskMode::Pairs,
        OMNIFUSE_MASK_CAUSAL => MaskMode::Causal,
        other => {
            return Err(Failure::invalid(format!(
                "mask {other} is unknown: expected OMNIFUSE_MASK_FULL (0), _INTRA (1), _CROSS (2), _PAIRS (3) or _CAUSAL (4)"
            )));
        }
    })
}

/// Fused cross-modal attention in f32 over a packed batch of variable-length sequences:
/// per head, `O = softmax(Q·Kᵀ·scale + bias[h, mq, mk]) · V`, each query seeing only keys of
/// its own sequence that the mask allows (a query that sees none outputs zeros).
/// `q` is `[total_q, heads, head_dim]`, `k` and `v` `[total_k, kv_heads, head_dim]`,
/// `out` `[total_q, heads, head_dim]` (dense, row-major; `out` must not overlap the inputs).
/// `cu_seqlens_q` / `cu_seqlens_k` hold `batch + 1` offsets from 0 (FlashAttention
/// convention). `modality_q` `[total_q]` and `modality_k` `[total_k]` hold each token's
/// modality id (NULL: all 0). `allowed_pairs` `[M, M]` (non-zero = allowed) is required for
/// `OMNIFUSE_MASK_PAIRS` and ignored otherwise. `bias` `[heads, M, M]` may be NULL (no bias).
///
/// # Safety
/// `params` is readable; every non-NULL pointer is readable (or, for `out`, writable) for
/// the element count above.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omnifuse_attention_f32(
    params: *const omnifuse_attention_params,
    q: *const f32,
    k: *const f32,
    v: *const f32,
    cu_seqlens_q: *const i32,
    cu_seqlens_k: *const i32,
    modality_q: *const i8,
    modality_k: *const i8,
    allowed_pairs: *const i8,
    bias: *const f32,
    out: *mut f32,
) -> omnifuse_status {
    guard(|| {
        if params.is_null() {
            return Err(Failure::invalid("params is NULL: expected the attention shapes"));
        }
        // SAFETY: non-NULL and readable by our contract.
        let p = unsafe { &*params };
        let mask = mask_mode(p.mask)?;
        let (tq, tk, h, hkv, d, m) = (p.total_q, p.total_k, p.heads, p.kv_heads, p.head_dim, p.modalities);
        let elems = |a: usize, b: usize, c: usize, what: &str| {
            a.checked_mul(b)
                .and_then(|x| x.checked_mul(c))
                .ok_or_else(|| Failure::invalid(format!("{what}: {a}×{b}×{c} elements overflow")))
        };
        let (nq, nk) = (elems(tq, h, d, "q")?, elems(tk, hkv, d, "k")?);
        if out.is_null() {
            return Err(Failure::invalid("out is NULL: expected the output [total_q, heads, head_dim]"));
        }
        if overlaps((out.cast::<u8>().cast_const(), nq * 4), (q.cast(), nq * 4))
            || overlaps((out.cast::<u8>().cast_const(), nq * 4), (k.cast(), nk * 4))
            || overlaps((out.cast::<u8>().cast_const(), nq * 4), (v.cast(), nk * 4))
        {
            return Err(Failure::invalid("attention: out overlaps q, k or v: the output must be separate memory"));
        }
        let cu_len = p.batch.checked_add(1).ok_or_else(|| Failure::invalid("batch overflows"))?;
        // SAFETY: every pointer is readable for the count the params give, by
        // our contract; NULL is refused where a length is non-zero.
        let (qs, ks, vs, cq, ck) = unsafe {
            (
                slice(q, nq, "q")?,
                slice(k, nk, "k")?,
                slice(v, nk, "v")?,
                slice(cu_seqlens_q, cu_len, "cu_seqlens_q")?,
                slice(cu_seqlens_k, cu_len, "cu_seqlens_k")?,
            )
        };
        let ids = |ptr: *const i8, n: usize, what: &str| -> Outcome<Vec<i8>> {
            if ptr.is_null() {
                Ok(vec![0; n])
            } else {
                // SAFETY: non-NULL and readable for `n` ids by our contract.
                Ok(unsafe { slice(ptr, n, what)? }.to_vec())
            }
        };
        let (mq, mk) = (ids(modality_q, tq, "modality_q")?, ids(modality_k, tk, "modality_k")?);
        let dev = backend()?;
        let mut inputs = vec![
            upload(&dev, &[tq, h, d], qs)?,
            upload(&dev, &[tk, hkv, d], ks)?,
            upload(&dev, &[tk, hkv, d], vs)?,
            upload(&dev, &[cu_len], cq)?,
            upload(&dev, &[cu_len], ck)?,
            upload(&dev, &[tq], &mq)?,
            upload(&dev, &[tk], &mk)?,
        ];
        if mask == MaskMode::Pairs {
            if allowed_pairs.is_null() {
                return Err(Failure::invalid("allowed_pairs is NULL: OMNIFUSE_MASK_PAIRS needs the [M, M] matrix"));
            }
            let mm = elems(m, m, 1, "allowed_pairs")?;
            // SAFETY: non-NULL and readable for M·M ids by our contract.
            let pairs = unsafe { slice(allowed_pairs, mm, "allowed_pairs")? };
            inputs.push(upload(&dev, &[m, m], pairs)?);
        }
        if !bias.is_null() {
            // SAFETY: non-NULL and readable for heads·M·M floats by our contract.
            let b = unsafe { slice(bias, elems(h, m, m, "bias")?, "bias")? };
            inputs.push(upload(&dev, &[h, m, m], b)?);
        }
        let spec = AttentionSpec {
            heads: h,
            kv_heads: hkv,
            modalities: m,
            mask,
            bias: !bias.is_null(),
            scale: if p.scale == 0.0 { None } else { Some(p.scale) },
        };
        let refs: Vec<&Tensor> = inputs.iter().collect();
        let o = dev.run_op(&Op::FusedAttention(spec), &refs)?;
        let host: Vec<f32> = dev.to_host(&o)?.to_vec()?;
        // SAFETY: non-NULL, writable for `nq` floats by our contract, and checked above not to
        // overlap the inputs.
        unsafe { std::slice::from_raw_parts_mut(out, nq) }.copy_from_slice(&host);
        Ok(())
    })
}
