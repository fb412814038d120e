// attention.cl — fused cross-modal attention (flash-style) over packed variable-length
// batches; plain multi-head attention runs through the same kernel (a padded batch
// [B, S, H·Dh] is the packed batch [B·S, H, Dh] of B equal sequences, full or causal mask).
//
// Algorithm: O = softmax(Q·Kᵀ·scale + bias[h, mq, mk]) · V per head, masked per the mode
// (0 full, 1 intra-modal, 2 cross-modal + own position, 3 allowed-pair matrix, 4 causal
// bottom-right aligned), never materialising the scores: each work-group owns BQ query rows
// of one sequence and one head (a block table from the host lists (sequence, first row)).
// It walks the sequence's keys in tiles of BK rows: the group stages K, V (widened to f32)
// and the keys' modality ids in local memory; each work-item scores its query row against
// the tile (an fma chain over the head dimension: one rounding per step), then updates its
// running max m, running sum l and output accumulator with the online-softmax rescale
// (acc ·= exp(m_old − m_new)). A causal group stops after the last
// key its last row can see. Grouped-query attention: query head h reads kv head
// h / (heads / kv_heads). A row that sees no key writes zeros.
// Launch shape: 2-D, local = (BQ, 1), global = (blocks·BQ, heads).
// Build options: DMAX (head-dim bucket, a power of two ≥ head_dim: private q/acc arrays),
// BK (keys per tile), BQ (rows per group), and the storage type.
// Limits: head_dim ≤ DMAX ≤ 256 (larger is refused at launch); local memory 2·BK·DMAX floats
// + BK ints (the host picks BK = clamp(4096 / DMAX, 8, 64): at most 32 KiB); sequence offsets,
// heads and head_dim are int.

#ifndef DMAX
#define DMAX 64
#endif
#ifndef BK
#define BK 32
#endif
#ifndef BQ
#define BQ 32
#endif

#define MASK_FULL 0
#define MASK_INTRA 1
#define MASK_CROSS 2
#define MASK_PAIRS 3
#define MASK_CAUSAL 4

inline bool visible(int mask, __global const char* pairs, int nm, int i, int j, int lq, int lk, int mq, int mk) {
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

__kernel __attribute__((reqd_work_group_size(BQ, 1, 1))) void K(attention_flash)(
    __global const T* q, __global const T* k, __global const T* v, __global const int* cu_q,
    __global const int* cu_k, __global const char* mod_q, __global const char* mod_k, __global const char* pairs,
    __global const float* bias, __global T* y, __global const int* blocks, int heads, int kv_heads, int dh, int nm,
    int mask, int has_bias, int use_mod, float scale) {
    __local float Ks[BK * DMAX];
    __local float Vs[BK * DMAX];
    __local int Ms[BK];
    int blk = (int)get_group_id(0);
    int h = (int)get_group_id(1);
    int lid = (int)get_local_id(0);
    int s = blocks[2 * blk];
    int qs = blocks[2 * blk + 1];
    int q0 = cu_q[s];
    int lq = cu_q[s + 1] - q0;
    int k0 = cu_k[s];
    int lk = cu_k[s + 1] - k0;
    int i = qs + lid;
    bool live = i < lq;
    int kvh = h / (heads / kv_heads);

    float qr[DMAX];
    float acc[DMAX];
    int mq = 0;
    if (live) {
        size_t base = ((size_t)(q0 + i) * heads + h) * dh;
        for (int d = 0; d < dh; d++) {
            qr[d] = LD(q, base + d);
            acc[d] = 0.0f;
        }
        if (use_mod) {
            mq = mod_q[q0 + i];
        }
    }
    float mrun = -INFINITY;
    float lsum = 0.0f;
    int kend = lk;
    if (mask == MASK_CAUSAL) {
        int ilast = min(qs + BQ, lq) - 1;
        kend = clamp(ilast + lk - lq + 1, 0, lk);
    }
    for (int j0 = 0; j0 < kend; j0 += BK) {
        int nk = min(BK, kend - j0);
        for (int e = lid; e < nk * dh; e += BQ) {
            int jj = e / dh;
            int d = e % dh;
            size_t src = ((size_t)(k0 + j0 + jj) * kv_heads + kvh) * dh + d;
            Ks[jj * DMAX + d] = LD(k, src);
            Vs[jj * DMAX + d] = LD(v, src);
        }
        if (use_mod) {
            for (int e = lid; e < nk; e += BQ) {
                Ms[e] = mod_k[k0 + j0 + e];
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (live) {
            float sc[BK];
            float tmax = -INFINITY;
            for (int jj = 0; jj < nk; jj++) {
                int mk = use_mod ? Ms[jj] : 0;
                if (!visible(mask, pairs, nm, i, j0 + jj, lq, lk, mq, mk)) {
                    sc[jj] = -INFINITY;
                    continue;
                }
                float dot = 0.0f;
                for (int d = 0; d < dh; d++) {
                    dot = fma(qr[d], Ks[jj * DMAX + d], dot);
                }
                float x = dot * scale;
                if (has_bias) {
                    x += bias[(h * nm + mq) * nm + mk];
                }
                sc[jj] = x;
                tmax = fmax(tmax, x);
            }
            if (tmax > -INFINITY) {
                float mnew = fmax(mrun, tmax);
                float corr = exp(mrun - mnew);
                lsum *= corr;
                for (int d = 0; d < dh; d++) {
                    acc[d] *= corr;
                }
                for (int jj = 0; jj < nk; jj++) {
                    if (sc[jj] == -INFINITY) {
                        continue;
                    }
                    float p = exp(sc[jj] - mnew);
                    lsum += p;
                    for (int d = 0; d < dh; d++) {
                        acc[d] = fma(p, Vs[jj * DMAX + d], acc[d]);
                    }
                }
                mrun = mnew;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (live) {
        size_t base = ((size_t)(q0 + i) * heads + h) * dh;
        float inv = lsum > 0.0f ? 1.0f / lsum : 0.0f;
        for (int d = 0; d < dh; d++) {
            ST(y, base + d, lsum > 0.0f ? acc[d] * inv : 0.0f);
        }
    }
}
