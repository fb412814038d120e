#include "omnifuse_gpu.h"
// attention_tc.cu — fused cross-modal attention on tensor cores (FlashAttention-2 style), f16
// storage, f32 softmax state. Semantics: crates/core/src/attention.rs (packed varlen batches,
// modality masks, per-(head, query modality, key modality) bias, GQA, bottom-right causal).
//
// Algorithm. One CTA owns BM = 16·NWARPS rows of one (sequence, kv head): with gp = heads /
// kv_heads query heads per kv head (grouped-query attention), packed row r is query r / gp of
// query head kv_head·gp + r % gp, so the gp heads sharing K/V share its loads and a decode step
// (one query) fills gp rows. Warp w owns packed rows 16w..16w+15 of the tile. The Q tile is
// staged in shared memory with cp.async and kept in registers as mma A fragments (ldmatrix).
// The CTA walks its sequence's keys in tiles of BN rows;
// K and V tiles (plus the keys' modality ids) are double-buffered: tile t+1 is in flight
// (cp.async, zero-filled past the sequence end) while tile t is consumed. Per tile each warp
//   S = Q·Kᵀ        mma.sync m16n8k16 f16→f32, K B-fragments by ldmatrix (non-transposed),
//   x = S·scale (+ bias[h, mq, mk]); keys the mask hides (or past the sequence end) → −inf,
//   online softmax per row in f32: m_new = max(m, rowmax x), corr = 2^((m − m_new)·log2e),
//   p = 2^((x − m_new)·log2e), l = l·corr + Σp, O = O·corr + P·V,
//   P·V             P packed to f16 straight from the S accumulators (the C layout of one
//                   m16n8 pair is the A layout of one m16k16), V B-fragments by ldmatrix.trans.
// A row whose running max is still −inf uses 0 as its reference, so p = corr = 0 and no NaN
// appears; at the end l = 0 → the row writes zeros. The output goes back through the warp's own
// rows of the (then idle) stage buffers and leaves in 16-byte stores.
// Masks (runtime, CTA-uniform): 0 full, 1 intra, 2 cross (+ own position), 3 allowed-pair
// matrix, 4 causal bottom-right aligned. Per-element masking runs only on tiles that need it
// (modality masks, bias, the sequence's last partial tile, causal tiles straddling the
// diagonal); causal key tiles past a warp's last visible key are skipped by that warp and tiles
// past the CTA's last row's visible key are never loaded.
//
// Launch shape: grid (ceil(max_seqlen_q·gp / BM), kv_heads, batch), block 32·NWARPS; CTAs whose
// tile starts past their sequence's packed rows exit at once. Decode (a few queries against a
// long cache) runs this same kernel: one CTA per (sequence, kv head) covering its gp query heads,
// warps without rows idle; there is no split over keys (one CTA walks the whole cache).
// Dynamic shared memory: 4·BN·(HEAD_DIM + 8)·2 + 2·BN bytes (two K/V stages; Q and the output
// are staged in them, so BM ≤ 2·BN).
// Defines: HEAD_DIM ∈ {32, 64, 80, 128} (a multiple of 16), BM (64 or 128), BN (keys per tile,
// a multiple of 16).
// Limits: pointers 16-byte aligned (checked by the host), token offsets, heads and
// max_seqlen_q·gp fit in int (checked by the host),
// row offsets are computed in 64 bits. Needs sm_80+ (mma.sync f16, ldmatrix, cp.async); other
// targets (HIP, older archs) trap — the host never launches it there.

#ifndef HEAD_DIM
#define HEAD_DIM 64
#endif
#ifndef BM
#define BM 64
#endif
#ifndef BN
#define BN 64
#endif

#define NWARPS (BM / 16)
#define NTHREADS (NWARPS * 32)
#define DP (HEAD_DIM + 8)      // shared row stride in halves: +16 bytes keeps ldmatrix conflict-free
#define KSTEPS (HEAD_DIM / 16) // k-steps of Q·Kᵀ
#define DTILES (HEAD_DIM / 8)  // n-tiles of P·V
#define NTILES (BN / 8)        // n-tiles of Q·Kᵀ
#define CHUNKS (HEAD_DIM / 8)  // 16-byte chunks per row

#if HEAD_DIM % 16 != 0 || BN % 16 != 0 || BM % 16 != 0
#error "HEAD_DIM, BN and BM must be multiples of 16"
#endif
#if BM > 2 * BN
#error "the Q tile is staged in one K/V stage: BM <= 2 * BN"
#endif

#define MASK_FULL 0
#define MASK_INTRA 1
#define MASK_CROSS 2
#define MASK_PAIRS 3
#define MASK_CAUSAL 4

#define ATT_LOG2E 1.4426950408889634f
#define ATT_NEG_INF (-__int_as_float(0x7f800000))

#if defined(OF_CUDA) && __CUDA_ARCH__ >= 800

OF_DEV unsigned att_smem(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }

// 16-byte async copy; src_bytes 0 zero-fills the destination.
OF_DEV void att_cp16(unsigned dst, const void* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
OF_DEV void att_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> OF_DEV void att_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

OF_DEV void att_ldsm4(unsigned addr, unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}
OF_DEV void att_ldsm4_t(unsigned addr, unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}

// D = A·B + D, m16n8k16, f16 inputs, f32 accumulators.
OF_DEV void att_mma(float* d, const unsigned* a, unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two f32 → f16x2, `lo` in the low half (the lower column / address).
OF_DEV unsigned att_pack(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

OF_DEV bool att_visible(int mask, const of_i8* pairs, int nm, int i, int j, int diag, int mq, int mk) {
    // diag = lk − lq: query i sees key j under causal when j ≤ i + diag.
    switch (mask) {
        case MASK_INTRA:
            return mq == mk;
        case MASK_CROSS:
            return mq != mk || j == i + diag;
        case MASK_PAIRS:
            return __ldg(pairs + mq * nm + mk) != 0;
        case MASK_CAUSAL:
            return j <= i + diag;
        default:
            return true;
    }
}

#endif

extern "C" __global__ void __launch_bounds__(NTHREADS) attention_tc_flash_f16(
    const of_f16* __restrict__ q, const of_f16* __restrict__ k, const of_f16* __restrict__ v,
    const int* __restrict__ cu_q, const int* __restrict__ cu_k, const of_i8* __restrict__ mod_q,
    const of_i8* __restrict__ mod_k, const of_i8* __restrict__ pairs, const float* __restrict__ bias,
    of_f16* __restrict__ o, int heads, int kv_heads, int nm, int mask, int has_bias, int use_mod, float scale) {
#if defined(OF_CUDA) && __CUDA_ARCH__ >= 800
    extern __shared__ __align__(16) unsigned char att_shared[];
    // Two stage buffers, each K rows [BN][DP] then V rows [BN][DP]; the Q tile is staged in
    // stage 1 (free until the first prefetch) and the output in stages 0–1 after the loop.
    of_f16* sKV = (of_f16*)att_shared;
    of_f16* sQ = sKV + 2 * BN * DP;
    of_i8* sMod = (of_i8*)(sKV + 4 * BN * DP); // [2][BN]

    const int seq = blockIdx.z;
    // GQA packing: the CTA serves kv head blockIdx.y and all `gp` query heads reading it; packed
    // row r is query r / gp of head h0 + r % gp (adjacent in memory), so K/V are loaded once per
    // group and a decode step (one query) still fills gp rows of the tile.
    const int gp = heads / kv_heads;
    const int kvh = blockIdx.y;
    const int h0 = kvh * gp;
    // Highest tiles first: under causal masks they carry the most keys.
    const int qs = (gridDim.x - 1 - blockIdx.x) * BM;
    const int q0 = cu_q[seq];
    const int lq = cu_q[seq + 1] - q0;
    const int rows = lq * gp; // packed rows
    if (qs >= rows) {
        return;
    }
    const int k0 = cu_k[seq];
    const int lk = cu_k[seq + 1] - k0;
    const int diag = lk - lq;
    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int g = lane >> 2; // accumulator row within the warp's 16 (and +8)
    const int t = lane & 3;  // accumulator column pair

    // Keys the CTA needs: under causal, up to its last row's diagonal.
    int kend = lk;
    if (mask == MASK_CAUSAL) {
        kend = min(max((min(qs + BM, rows) - 1) / gp + diag + 1, 0), lk);
    }
    const int ntiles = (kend + BN - 1) / BN;

    const long long q_row_stride = (long long)heads * HEAD_DIM;
    const long long kv_row_stride = (long long)kv_heads * HEAD_DIM;
    // Packed row r sits (r / gp)·heads·HEAD_DIM + (r % gp)·HEAD_DIM after the group's first.
    const of_f16* qbase = q + ((long long)q0 * heads + h0) * HEAD_DIM;
    auto packed_off = [&](int r) -> long long { return (long long)(r / gp) * q_row_stride + (r % gp) * HEAD_DIM; };
    const of_f16* kbase = k + ((long long)k0 * kv_heads + kvh) * HEAD_DIM;
    const of_f16* vbase = v + ((long long)k0 * kv_heads + kvh) * HEAD_DIM;

    // Q tile → shared (rows past the sequence zero-filled): its own commit group.
    for (int e = tid; e < BM * CHUNKS; e += NTHREADS) {
        const int r = e / CHUNKS, c = e % CHUNKS;
        const bool ok = qs + r < rows;
        const of_f16* src = ok ? qbase + packed_off(qs + r) + c * 8 : q;
        att_cp16(att_smem(sQ + r * DP + c * 8), src, ok ? 16 : 0);
    }
    att_commit();

    auto load_kv = [&](int j0, int buf) {
        of_f16* dk = sKV + buf * 2 * BN * DP;
        of_f16* dv = dk + BN * DP;
        for (int e = tid; e < BN * CHUNKS; e += NTHREADS) {
            const int r = e / CHUNKS, c = e % CHUNKS;
            const bool ok = j0 + r < lk;
            const long long off = ok ? (long long)(j0 + r) * kv_row_stride + c * 8 : 0;
            att_cp16(att_smem(dk + r * DP + c * 8), ok ? kbase + off : k, ok ? 16 : 0);
            att_cp16(att_smem(dv + r * DP + c * 8), ok ? vbase + off : v, ok ? 16 : 0);
        }
    };
    if (ntiles > 0) {
        load_kv(0, 0);
        if (use_mod && tid < BN) {
            sMod[tid] = tid < lk ? mod_k[k0 + tid] : (of_i8)0;
        }
    }
    att_commit();

    // This thread's two rows (tile rows warp·16 + g and + 8).
    const int wrow = qs + warp * 16; // first packed row of the warp
    const int i0 = (wrow + g) / gp, i1 = (wrow + g + 8) / gp; // their queries in the sequence
    const int hr0 = h0 + (wrow + g) % gp, hr1 = h0 + (wrow + g + 8) % gp; // and heads
    const bool warp_live = wrow < rows;
    int mq0 = 0, mq1 = 0;
    if (use_mod) {
        if (i0 < lq) mq0 = mod_q[q0 + i0];
        if (i1 < lq) mq1 = mod_q[q0 + i1];
    }
    const float* brow0 = has_bias ? bias + ((long long)hr0 * nm + mq0) * nm : bias;
    const float* brow1 = has_bias ? bias + ((long long)hr1 * nm + mq1) * nm : bias;
    // Keys this warp can see at all (causal): up to its last row's diagonal.
    int wkend = kend;
    if (mask == MASK_CAUSAL) {
        wkend = min(max((min(wrow + 16, rows) - 1) / gp + diag + 1, 0), lk);
    }

    float acc[DTILES][4];
#pragma unroll
    for (int d = 0; d < DTILES; d++) {
        acc[d][0] = acc[d][1] = acc[d][2] = acc[d][3] = 0.0f;
    }
    float mrow0 = ATT_NEG_INF, mrow1 = ATT_NEG_INF;
    float lrow0 = 0.0f, lrow1 = 0.0f;

    // Q fragments: wait for the Q group (the K/V group may still be in flight).
    att_wait<1>();
    __syncthreads();
    unsigned qf[KSTEPS][4];
    {
        const of_f16* base = sQ + (warp * 16 + (lane & 15)) * DP + (lane >> 4) * 8;
#pragma unroll
        for (int ks = 0; ks < KSTEPS; ks++) {
            att_ldsm4(att_smem(base + ks * 16), qf[ks][0], qf[ks][1], qf[ks][2], qf[ks][3]);
        }
    }
    __syncthreads(); // every warp holds its Q fragments: stage 1 may be refilled

    for (int it = 0; it < ntiles; it++) {
        const int j0 = it * BN;
        const int buf = it & 1;
        // Prefetch tile it+1 into the other buffer; its modality ids wait in a register.
        int next_mod = 0;
        if (it + 1 < ntiles) {
            load_kv(j0 + BN, buf ^ 1);
            if (use_mod && tid < BN && j0 + BN + tid < lk) {
                next_mod = mod_k[k0 + j0 + BN + tid];
            }
        }
        att_commit();
        att_wait<1>();
        __syncthreads();

        if (warp_live && j0 < wkend) {
            const of_f16* cK = sKV + buf * 2 * BN * DP;
            const of_f16* cV = cK + BN * DP;
            const of_i8* cMod = sMod + buf * BN;

            // S = Q·Kᵀ
            float s[NTILES][4];
#pragma unroll
            for (int n = 0; n < NTILES; n++) {
                s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
            }
            {
                const of_f16* kb = cK + ((lane & 7) + ((lane >> 4) << 3)) * DP + ((lane >> 3) & 1) * 8;
#pragma unroll
                for (int ks = 0; ks < KSTEPS; ks++) {
#pragma unroll
                    for (int n2 = 0; n2 < NTILES / 2; n2++) {
                        unsigned b0, b1, b2, b3;
                        att_ldsm4(att_smem(kb + n2 * 16 * DP + ks * 16), b0, b1, b2, b3);
                        att_mma(s[2 * n2], qf[ks], b0, b1);
                        att_mma(s[2 * n2 + 1], qf[ks], b2, b3);
                    }
                }
            }

            // Scale, bias, mask.
            const bool need_mask = mask == MASK_INTRA || mask == MASK_CROSS || mask == MASK_PAIRS || has_bias ||
                                   j0 + BN > lk || (mask == MASK_CAUSAL && j0 + BN - 1 > wrow / gp + diag);
            if (!need_mask) {
#pragma unroll
                for (int n = 0; n < NTILES; n++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        s[n][e] *= scale;
                    }
                }
            } else {
#pragma unroll
                for (int n = 0; n < NTILES; n++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int col = n * 8 + 2 * t + (e & 1);
                        const int j = j0 + col;
                        const int i = e < 2 ? i0 : i1;
                        const int mq = e < 2 ? mq0 : mq1;
                        const int mk = use_mod ? (int)cMod[col] : 0;
                        float x = s[n][e] * scale;
                        if (has_bias) {
                            x += __ldg((e < 2 ? brow0 : brow1) + mk);
                        }
                        const bool vis = j < lk && att_visible(mask, pairs, nm, i, j, diag, mq, mk);
                        s[n][e] = vis ? x : ATT_NEG_INF;
                    }
                }
            }

            // Online softmax, rows g and g+8 (each row spread over the 4 lanes of a quad).
            float tmax0 = ATT_NEG_INF, tmax1 = ATT_NEG_INF;
#pragma unroll
            for (int n = 0; n < NTILES; n++) {
                tmax0 = fmaxf(tmax0, fmaxf(s[n][0], s[n][1]));
                tmax1 = fmaxf(tmax1, fmaxf(s[n][2], s[n][3]));
            }
            tmax0 = fmaxf(tmax0, __shfl_xor_sync(0xffffffffu, tmax0, 1));
            tmax0 = fmaxf(tmax0, __shfl_xor_sync(0xffffffffu, tmax0, 2));
            tmax1 = fmaxf(tmax1, __shfl_xor_sync(0xffffffffu, tmax1, 1));
            tmax1 = fmaxf(tmax1, __shfl_xor_sync(0xffffffffu, tmax1, 2));
            const float mnew0 = fmaxf(mrow0, tmax0);
            const float mnew1 = fmaxf(mrow1, tmax1);
            // A row with nothing visible yet keeps −inf; 0 as its reference keeps every
            // exponent −inf (→ 0) instead of −inf − (−inf) = NaN.
            const float ref0 = mnew0 == ATT_NEG_INF ? 0.0f : mnew0;
            const float ref1 = mnew1 == ATT_NEG_INF ? 0.0f : mnew1;
            const float corr0 = exp2f((mrow0 - ref0) * ATT_LOG2E);
            const float corr1 = exp2f((mrow1 - ref1) * ATT_LOG2E);
            mrow0 = mnew0;
            mrow1 = mnew1;
            float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
            for (int n = 0; n < NTILES; n++) {
                s[n][0] = exp2f((s[n][0] - ref0) * ATT_LOG2E);
                s[n][1] = exp2f((s[n][1] - ref0) * ATT_LOG2E);
                s[n][2] = exp2f((s[n][2] - ref1) * ATT_LOG2E);
                s[n][3] = exp2f((s[n][3] - ref1) * ATT_LOG2E);
                sum0 += s[n][0] + s[n][1];
                sum1 += s[n][2] + s[n][3];
            }
            lrow0 = lrow0 * corr0 + sum0;
            lrow1 = lrow1 * corr1 + sum1;
#pragma unroll
            for (int d = 0; d < DTILES; d++) {
                acc[d][0] *= corr0;
                acc[d][1] *= corr0;
                acc[d][2] *= corr1;
                acc[d][3] *= corr1;
            }

            // O += P·V
            {
                const of_f16* vb = cV + ((lane & 7) + (((lane >> 3) & 1) << 3)) * DP + (lane >> 4) * 8;
#pragma unroll
                for (int kk = 0; kk < BN / 16; kk++) {
                    unsigned a[4];
                    a[0] = att_pack(s[2 * kk][0], s[2 * kk][1]);
                    a[1] = att_pack(s[2 * kk][2], s[2 * kk][3]);
                    a[2] = att_pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
                    a[3] = att_pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
                    for (int d2 = 0; d2 < DTILES / 2; d2++) {
                        unsigned b0, b1, b2, b3;
                        att_ldsm4_t(att_smem(vb + kk * 16 * DP + d2 * 16), b0, b1, b2, b3);
                        att_mma(acc[2 * d2], a, b0, b1);
                        att_mma(acc[2 * d2 + 1], a, b2, b3);
                    }
                }
            }
        }

        // The next tile's modality ids go to the buffer every thread finished reading last
        // iteration (all passed this iteration's barrier).
        if (use_mod && tid < BN && it + 1 < ntiles) {
            sMod[(buf ^ 1) * BN + tid] = (of_i8)next_mod;
        }
        __syncthreads(); // buffer `buf` is refilled next iteration
    }
    att_wait<0>();

    if (!warp_live) {
        return;
    }
    // Row sums over the quad, normalise, stage in the warp's own Q rows, store 16 bytes a lane.
    lrow0 += __shfl_xor_sync(0xffffffffu, lrow0, 1);
    lrow0 += __shfl_xor_sync(0xffffffffu, lrow0, 2);
    lrow1 += __shfl_xor_sync(0xffffffffu, lrow1, 1);
    lrow1 += __shfl_xor_sync(0xffffffffu, lrow1, 2);
    const float inv0 = lrow0 > 0.0f ? 1.0f / lrow0 : 0.0f;
    const float inv1 = lrow1 > 0.0f ? 1.0f / lrow1 : 0.0f;
    of_f16* so = sKV + warp * 16 * DP; // the loop's last barrier freed both stages
#pragma unroll
    for (int d = 0; d < DTILES; d++) {
        *(unsigned*)(so + g * DP + d * 8 + 2 * t) = att_pack(acc[d][0] * inv0, acc[d][1] * inv0);
        *(unsigned*)(so + (g + 8) * DP + d * 8 + 2 * t) = att_pack(acc[d][2] * inv1, acc[d][3] * inv1);
    }
    __syncwarp();
    of_f16* obase = o + ((long long)q0 * heads + h0) * HEAD_DIM;
    for (int e = lane; e < 16 * CHUNKS; e += 32) {
        const int r = e / CHUNKS, c = e % CHUNKS;
        if (wrow + r < rows) {
            *(uint4*)(obase + packed_off(wrow + r) + c * 8) = *(const uint4*)(so + r * DP + c * 8);
        }
    }
#else
    __builtin_trap();
#endif
}
