#include "omnifuse_gpu.h"
// attention.cu — fused cross-modal attention (flash-style) over packed variable-length batches;
// plain multi-head attention runs through the same kernel (a padded batch [B, S, H·Dh] is the
// packed batch [B·S, H, Dh] of B equal sequences, full or causal mask). The general path for
// f32/f16/bf16 storage; tensor-core attention lives elsewhere.
//
// Algorithm (the one of kernels/opencl/attention.cl): O = softmax(Q·Kᵀ·scale + bias[h, mq, mk])·V
// per head, masked per the mode (0 full, 1 intra-modal, 2 cross-modal + own position,
// 3 allowed-pair matrix, 4 causal bottom-right aligned), never materialising the scores. A
// block owns BQ = ATT_WARPS·ATT_RPW query rows of one sequence and one head: warp w owns rows
// w·ATT_RPW .. +ATT_RPW. The block walks the sequence's keys in tiles of BK rows, staging K, V
// (widened to f32; K rows padded by one word) and the keys' modality ids in shared memory. Per
// row, each lane scores the keys lane, lane + OF_WARP, .. of the tile (an fma chain over the
// head dimension, d ascending: one rounding per step, as the OpenCL kernel does), the warp
// takes the tile maximum, and the online-softmax update follows: m_new = max(m, tile max),
// acc ·= exp(m − m_new), l ·= exp(m − m_new), then for each visible key in ascending order
// p = exp(s − m_new), l += p, acc[d] = fma(p, V[key, d], acc[d]) — the lanes split the head
// dimension (d = lane + t·OF_WARP), the probabilities pass through shared memory. A tile where
// a row sees no key leaves that row unchanged. A causal block stops after the last key its last
// row can see. Grouped-query attention: query head h reads kv head h / (heads / kv_heads). A row
// that sees no key writes zeros.
//
// Symbols: attention_flash_{f32,f16,bf16}(q, k, v, cu_q, cu_k, mod_q, mod_k, pairs, bias, y,
//   qblocks, heads, kv_heads, dh, nm, mask, has_bias, use_mod, scale, fixed_lq, fixed_lk).
//   fixed_lq ≥ 0 means every sequence has fixed_lq query rows (cu_q is not read; −1 reads
//   cu_q), likewise fixed_lk for keys; mod_q/mod_k are read only when use_mod, pairs only for
//   mask 3, bias only when has_bias.
// Launch shape: block (ATT_WARPS·OF_WARP, 1, 1); grid (sequences·qblocks, heads, 1) where
//   qblocks = ceil(longest query sequence / BQ); block x serves sequence x / qblocks, rows
//   (x % qblocks)·BQ ..; blocks past a sequence's end return at once.
// Dynamic shared memory: 4·(BQ·DMAX + BK·(DMAX + 1) + BK·DMAX + BQ·BK + BK) bytes
//   (82.3 KiB at DMAX 256, BK 32; 41.5 KiB at DMAX 64, BK 64).
// Defines: DMAX (power of two ≥ head_dim, 32..256), BK (keys per tile), ATT_WARPS, ATT_RPW.
// Limits: head_dim ≤ DMAX ≤ 256; sequence offsets, heads and head_dim are int.

#ifndef DMAX
#define DMAX 64
#endif
#ifndef BK
#define BK 64
#endif
#ifndef ATT_WARPS
#define ATT_WARPS 4
#endif
#ifndef ATT_RPW
#define ATT_RPW 4
#endif
#define BQ (ATT_WARPS * ATT_RPW)

// Register arrays are sized for the narrowest warp any target has (32 lanes); a wider warp
// (64-lane wavefronts) leaves the upper slots unused.
#define ATT_MIN_WARP 32
#define DPL ((DMAX + ATT_MIN_WARP - 1) / ATT_MIN_WARP)
#define KPL ((BK + ATT_MIN_WARP - 1) / ATT_MIN_WARP)

// Largest block the kernel is launched with (launch bounds): the warp width is a compile-time
// constant on CUDA only; 64 bounds every HIP wavefront.
#if defined(OF_CUDA)
#define ATT_THREADS (ATT_WARPS * OF_WARP)
#define ATT_SYNCWARP() __syncwarp()
#else
#define ATT_THREADS (ATT_WARPS * 64)
#define ATT_SYNCWARP()                                                                                             \
    do {                                                                                                           \
        __builtin_amdgcn_fence(__ATOMIC_RELEASE, "wavefront");                                                     \
        __builtin_amdgcn_wave_barrier();                                                                           \
        __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "wavefront");                                                     \
    } while (0)
#endif

// −∞ (the runtime compilers get no math.h, so no INFINITY).
#define ATT_NEG_INF __uint_as_float(0xff800000u)

#define MASK_FULL 0
#define MASK_INTRA 1
#define MASK_CROSS 2
#define MASK_PAIRS 3
#define MASK_CAUSAL 4

OF_DEV bool att_visible(int mask, const of_i8* pairs, int nm, int i, int j, int lq, int lk, int mq, int mk) {
    int aligned = i + lk - lq;
    switch (mask) {
        case MASK_INTRA:
            return mq == mk;
        case MASK_CROSS:
            return mq != mk || j == aligned;
        case MASK_PAIRS:
            return pairs[mq * nm + mk] != 0;
        case MASK_CAUSAL:
            return j <= aligned;
        default:
            return true;
    }
}

template <typename T>
OF_DEV void attention_flash(const T* q, const T* k, const T* v, const int* cu_q, const int* cu_k, const of_i8* mod_q,
                            const of_i8* mod_k, const of_i8* pairs, const float* bias, T* y, int qblocks, int heads,
                            int kv_heads, int dh, int nm, int mask, int has_bias, int use_mod, float scale,
                            int fixed_lq, int fixed_lk) {
    extern __shared__ float att_smem[];
    float* Qs = att_smem;                  // [BQ][DMAX]
    float* Ks = Qs + BQ * DMAX;            // [BK][DMAX + 1]
    float* Vs = Ks + BK * (DMAX + 1);      // [BK][DMAX]
    float* Ps = Vs + BK * DMAX;            // [BQ][BK]
    int* Ms = (int*)(Ps + BQ * BK);        // [BK]

    const int blk = blockIdx.x;
    const int h = blockIdx.y;
    const int s = blk / qblocks;
    const int qs = (blk % qblocks) * BQ;
    const int q0 = fixed_lq >= 0 ? s * fixed_lq : cu_q[s];
    const int lq = fixed_lq >= 0 ? fixed_lq : cu_q[s + 1] - q0;
    const int k0 = fixed_lk >= 0 ? s * fixed_lk : cu_k[s];
    const int lk = fixed_lk >= 0 ? fixed_lk : cu_k[s + 1] - k0;
    if (qs >= lq) {
        return;  // the whole block: no barrier is skipped by part of it
    }
    const int tid = threadIdx.x;
    const int nthreads = blockDim.x;
    const int lane = tid % OF_WARP;
    const int warp = tid / OF_WARP;
    const int kvh = h / (heads / kv_heads);

    // Query rows of the block, widened to f32 (rows past the sequence read as zero).
    for (int e = tid; e < BQ * dh; e += nthreads) {
        int row = e / dh;
        int d = e % dh;
        int i = qs + row;
        Qs[row * DMAX + d] = i < lq ? of_load_f32<T>(q, ((of_u64)(q0 + i) * heads + h) * dh + d) : 0.0f;
    }

    float acc[ATT_RPW][DPL];
    float mrun[ATT_RPW];
    float lsum[ATT_RPW];
    int mq[ATT_RPW];
#pragma unroll
    for (int r = 0; r < ATT_RPW; r++) {
        int i = qs + warp * ATT_RPW + r;
        mrun[r] = ATT_NEG_INF;
        lsum[r] = 0.0f;
        mq[r] = (use_mod && i < lq) ? (int)mod_q[q0 + i] : 0;
#pragma unroll
        for (int t = 0; t < DPL; t++) {
            acc[r][t] = 0.0f;
        }
    }

    int kend = lk;
    if (mask == MASK_CAUSAL) {
        int ilast = min(qs + BQ, lq) - 1;
        kend = min(max(ilast + lk - lq + 1, 0), lk);
    }
    for (int j0 = 0; j0 < kend; j0 += BK) {
        const int nk = min(BK, kend - j0);
        for (int e = tid; e < nk * dh; e += nthreads) {
            int jj = e / dh;
            int d = e % dh;
            of_u64 src = ((of_u64)(k0 + j0 + jj) * kv_heads + kvh) * dh + d;
            Ks[jj * (DMAX + 1) + d] = of_load_f32<T>(k, src);
            Vs[jj * DMAX + d] = of_load_f32<T>(v, src);
        }
        if (use_mod) {
            for (int e = tid; e < nk; e += nthreads) {
                Ms[e] = mod_k[k0 + j0 + e];
            }
        }
        __syncthreads();
#pragma unroll
        for (int r = 0; r < ATT_RPW; r++) {
            const int row = warp * ATT_RPW + r;
            const int i = qs + row;
            if (i >= lq) {
                continue;  // warp-uniform
            }
            const float* qr = Qs + row * DMAX;
            float sc[KPL];
            float tmax = ATT_NEG_INF;
#pragma unroll
            for (int c = 0; c < KPL; c++) {
                int jj = lane + c * OF_WARP;
                sc[c] = ATT_NEG_INF;
                if (jj < nk) {
                    int mk = use_mod ? Ms[jj] : 0;
                    if (att_visible(mask, pairs, nm, i, j0 + jj, lq, lk, mq[r], mk)) {
                        const float* kr = Ks + jj * (DMAX + 1);
                        float dot = 0.0f;
                        for (int d = 0; d < dh; d++) {
                            dot = fmaf(qr[d], kr[d], dot);
                        }
                        float x = dot * scale;
                        if (has_bias) {
                            x += bias[(h * nm + mq[r]) * nm + mk];
                        }
                        sc[c] = x;
                        tmax = fmaxf(tmax, x);
                    }
                }
            }
            tmax = of_warp_max(tmax);
            if (tmax > ATT_NEG_INF) {  // warp-uniform
                const float mnew = fmaxf(mrun[r], tmax);
                const float corr = expf(mrun[r] - mnew);
                float* pr = Ps + row * BK;
#pragma unroll
                for (int c = 0; c < KPL; c++) {
                    int jj = lane + c * OF_WARP;
                    if (jj < nk) {
                        // −1 marks a key the row does not see (a probability is never negative).
                        pr[jj] = sc[c] == ATT_NEG_INF ? -1.0f : expf(sc[c] - mnew);
                    }
                }
                ATT_SYNCWARP();
                float l = lsum[r] * corr;
#pragma unroll
                for (int t = 0; t < DPL; t++) {
                    acc[r][t] *= corr;
                }
                for (int jj = 0; jj < nk; jj++) {
                    float p = pr[jj];
                    if (p < 0.0f) {
                        continue;
                    }
                    l += p;
                    const float* vr = Vs + jj * DMAX;
#pragma unroll
                    for (int t = 0; t < DPL; t++) {
                        int d = lane + t * OF_WARP;
                        if (d < dh) {
                            acc[r][t] = fmaf(p, vr[d], acc[r][t]);
                        }
                    }
                }
                lsum[r] = l;
                mrun[r] = mnew;
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < ATT_RPW; r++) {
        const int i = qs + warp * ATT_RPW + r;
        if (i >= lq) {
            continue;
        }
        const of_u64 base = ((of_u64)(q0 + i) * heads + h) * dh;
        const float inv = lsum[r] > 0.0f ? __fdiv_rn(1.0f, lsum[r]) : 0.0f;
#pragma unroll
        for (int t = 0; t < DPL; t++) {
            int d = lane + t * OF_WARP;
            if (d < dh) {
                of_store_f32<T>(y, base + d, lsum[r] > 0.0f ? acc[r][t] * inv : 0.0f);
            }
        }
    }
}

#define ATTENTION(DT, T)                                                                                          \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS, 1) attention_flash_##DT(                            \
        const T* q, const T* k, const T* v, const int* cu_q, const int* cu_k, const of_i8* mod_q,                 \
        const of_i8* mod_k, const of_i8* pairs, const float* bias, T* y, int qblocks, int heads, int kv_heads,     \
        int dh, int nm, int mask, int has_bias, int use_mod, float scale, int fixed_lq, int fixed_lk) {           \
        attention_flash<T>(q, k, v, cu_q, cu_k, mod_q, mod_k, pairs, bias, y, qblocks, heads, kv_heads, dh, nm,   \
                           mask, has_bias, use_mod, scale, fixed_lq, fixed_lk);                                    \
    }

ATTENTION(f32, float)
ATTENTION(f16, of_f16)
ATTENTION(bf16, of_bf16)
