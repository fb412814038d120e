// gemm.cl — batched GEMM with a fused epilogue: y = act(scale · (A·B) + bias) + residual,
// for f32/f16/bf16 storage (f32 accumulate) and i8 × i8 → i32 (integer multiply-add that
// wraps, no epilogue).
//
// Algorithm: each work-group computes a TM × TN tile of one batch's output. The K loop
// stages a TM × TK slab of A and a TK × TN slab of B in local memory (widened to the
// accumulator type, zero-filled past the matrix edges), then every work-item multiplies a
// WM × WN register block out of them: rows ty + r·(TM/WM), columns tx + c·(TN/WN) (strided,
// so neighbouring items read neighbouring local words). Slab loads are ordered so that
// consecutive work-items read consecutive addresses of the stored layout, for each of the
// four transpose combinations (TRANS_A: A stored [K, M]; TRANS_B: B stored [N, K]).
// B is shared by every batch when b_stride is 0 (weights), else batch b reads B + b·K·N.
// Float products accumulate with fma (one rounding per step); i8 products are widened to
// uint and summed with plain integer multiply-add (wrapping, as the op defines).
// The epilogue runs on the accumulators and rounds once on store.
// Launch shape: 3-D, local = (TN/WN, TM/WM, 1), global = (ceil(N/TN)·TN/WN,
// ceil(M/TM)·TM/WM, batch).
// Build options: TM, TN, TK, WM, WN (tile sizes; TM % WM == 0, TN % WN == 0; defaults
// 64, 64, 16, 4, 4), TRANS_A, TRANS_B (0/1), the storage type, and GEMM_VEC (build the
// gemm_vec variant below instead of gemm_tiled).
// QGEMM (with T_I8): the INT8 GEMM with the dequantising epilogue fused — the i32 sum is
// turned into v = acc · (a_scale[row] · scale) · b_scale[col] in f32, then bias, activation
// and residual (all f32), and stored as float, or with REQUANT as char
// clamp(round(v / requant), −127, 127) (NaN → 0). a_scale has one entry per row of all
// batches, or one for all when a_scale_rows is 0.
// Limits: local memory TK·(TM + TN) accumulator words (8 KiB at the defaults); the work-group
// size (TM/WM)·(TN/WN) must not exceed the device's maximum (256 at the defaults).
//
// Variant gemm_vec (build option GEMM_VEC; float storage only, for CPU-class devices such as
// PoCL): no local memory and no barriers. Each work-item computes a WM × WN block of
// contiguous outputs — rows i0..i0+WM, columns j0..j0+WN with WN ∈ {4, 8, 16} — as WM floatWN
// accumulators over the whole K loop: per step it loads one WN-wide row segment of B with a
// vector load (vload / vload_half / widened ushort; element-wise gathers at the right edge and
// when TRANS_B) and broadcasts WM scalars of A into fmas. The group (TN/WN) × (TM/WM) shares
// one TN-wide strip of B, which stays in cache while its work-items run in turn. TK > 0 cuts
// K into blocks of TK with a barrier after each (no local memory: the barrier only keeps the
// group's items in step, so a TK × TN block of B is reused from cache by all of them); TK = 0
// runs K in one sweep. Same launch shape as gemm_tiled; rows past M read row M−1 and are
// not stored.

#ifndef TM
#define TM 64
#endif
#ifndef TN
#define TN 64
#endif
#ifndef TK
#define TK 16
#endif
#ifndef WM
#define WM 4
#endif
#ifndef WN
#define WN 4
#endif
#ifndef TRANS_A
#define TRANS_A 0
#endif
#ifndef TRANS_B
#define TRANS_B 0
#endif

#define RX (TN / WN)
#define RY (TM / WM)
#define NT (RX * RY)

#if defined(T_I8) && defined(QGEMM)
typedef uint ACC;
typedef float OUT_T;
#if defined(REQUANT)
typedef char Y_T;
#else
typedef float Y_T;
#endif
#define WIDEN(x) ((uint)(x))
#define MADD(a, b, c) ((c) + (a) * (b))
#elif defined(T_I8)
typedef uint ACC;
typedef int OUT_T;
#define WIDEN(x) ((uint)(x))
#define MADD(a, b, c) ((c) + (a) * (b))
#else
typedef float ACC;
typedef T OUT_T;
#define WIDEN(x) (x)
#define MADD(a, b, c) fma((a), (b), (c))
#endif

#if TRANS_A
#define A_AT(i, p) LD(a, (p) * m + (i))
#else
#define A_AT(i, p) LD(a, (i) * k + (p))
#endif
#if TRANS_B
#define B_AT(p, j) LD(bm, (j) * k + (p))
#else
#define B_AT(p, j) LD(bm, (p) * n + (j))
#endif

#if !defined(GEMM_VEC)
__kernel __attribute__((reqd_work_group_size(RX, RY, 1))) void K(gemm_tiled)(
    __global const T* a_all, __global const T* b_all,
#if defined(QGEMM)
    __global const float* a_scale, __global const float* b_scale, ulong a_scale_rows, float requant,
    __global const OUT_T* bias, __global const OUT_T* res, __global Y_T* y,
#else
    __global const OUT_T* bias, __global const OUT_T* res, __global OUT_T* y,
#endif
    ulong m, ulong n, ulong k, ulong b_stride, float scale, int has_bias, int act, int has_res) {
    __local ACC As[TK][TM];
    __local ACC Bs[TK][TN];
    size_t batch = get_group_id(2);
    __global const T* a = a_all + batch * m * k;
    __global const T* bm = b_all + batch * b_stride;
    size_t m0 = get_group_id(1) * TM;
    size_t n0 = get_group_id(0) * TN;
    int tx = (int)get_local_id(0);
    int ty = (int)get_local_id(1);
    int tid = ty * RX + tx;
    ACC acc[WM][WN];
    for (int r = 0; r < WM; r++) {
        for (int c = 0; c < WN; c++) {
            acc[r][c] = 0;
        }
    }
    for (size_t k0 = 0; k0 < k; k0 += TK) {
        for (int l = tid; l < TM * TK; l += NT) {
#if TRANS_A
            int mm = l % TM;
            int kk = l / TM;
#else
            int kk = l % TK;
            int mm = l / TK;
#endif
            size_t gi = m0 + mm;
            size_t gp = k0 + kk;
            As[kk][mm] = (gi < m && gp < k) ? WIDEN(A_AT(gi, gp)) : (ACC)0;
        }
        for (int l = tid; l < TN * TK; l += NT) {
#if TRANS_B
            int kk = l % TK;
            int nn = l / TK;
#else
            int nn = l % TN;
            int kk = l / TN;
#endif
            size_t gj = n0 + nn;
            size_t gp = k0 + kk;
            Bs[kk][nn] = (gj < n && gp < k) ? WIDEN(B_AT(gp, gj)) : (ACC)0;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < TK; kk++) {
            ACC ar[WM];
            ACC br[WN];
            for (int r = 0; r < WM; r++) {
                ar[r] = As[kk][ty + r * RY];
            }
            for (int c = 0; c < WN; c++) {
                br[c] = Bs[kk][tx + c * RX];
            }
            for (int r = 0; r < WM; r++) {
                for (int c = 0; c < WN; c++) {
                    acc[r][c] = MADD(ar[r], br[c], acc[r][c]);
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int r = 0; r < WM; r++) {
        size_t i = m0 + ty + r * RY;
        if (i >= m) {
            continue;
        }
        for (int c = 0; c < WN; c++) {
            size_t j = n0 + tx + c * RX;
            if (j >= n) {
                continue;
            }
            size_t o = (batch * m + i) * n + j;
#if defined(QGEMM)
            float sa = a_scale[a_scale_rows ? batch * m + i : 0] * scale;
            float v = (float)as_int(acc[r][c]) * sa * b_scale[j];
            if (has_bias) {
                v += bias[j];
            }
            v = activate(v, act);
            if (has_res) {
                v += res[o];
            }
#if defined(REQUANT)
            float q = round(v / requant);
            y[o] = isnan(q) ? (char)0 : (char)clamp(q, -127.0f, 127.0f);
#else
            y[o] = v;
#endif
#elif defined(T_I8)
            y[o] = as_int(acc[r][c]);
#else
            float v = acc[r][c] * scale;
            if (has_bias) {
                v += LD(bias, j);
            }
            v = activate(v, act);
            if (has_res) {
                v += LD(res, o);
            }
            ST(y, o, v);
#endif
        }
    }
}
#endif // !GEMM_VEC

#if defined(GEMM_VEC) && defined(IS_FLOAT)
#define VCAT_(a, b) a##b
#define VCAT(a, b) VCAT_(a, b)
typedef VCAT(float, WN) VT;
#if defined(T_F32)
#define LDV(p, o) VCAT(vload, WN)(0, (p) + (o))
#elif defined(T_F16)
#define LDV(p, o) VCAT(vload_half, WN)(0, (p) + (o))
#else
#define LDV(p, o) VCAT(as_float, WN)(VCAT(convert_uint, WN)(VCAT(vload, WN)(0, (p) + (o))) << 16)
#endif

// Row p of B at columns j0.. as a vector; columns at or past n read as 0.
inline VT b_gather(__global const T* bm, size_t p, size_t j0, size_t n, size_t k) {
    float t[WN];
    for (int c = 0; c < WN; c++) {
        size_t j = j0 + c;
        t[c] = j < n ? B_AT(p, j) : 0.0f;
    }
    return VCAT(vload, WN)(0, t);
}

__kernel __attribute__((reqd_work_group_size(RX, RY, 1))) void K(gemm_vec)(
    __global const T* a_all, __global const T* b_all,
#if defined(QGEMM)
    __global const float* a_scale, __global const float* b_scale, ulong a_scale_rows, float requant,
    __global const OUT_T* bias, __global const OUT_T* res, __global Y_T* y,
#else
    __global const OUT_T* bias, __global const OUT_T* res, __global OUT_T* y,
#endif
    ulong m, ulong n, ulong k, ulong b_stride, float scale, int has_bias, int act, int has_res) {
    size_t batch = get_group_id(2);
    __global const T* a = a_all + batch * m * k;
    __global const T* bm = b_all + batch * b_stride;
    size_t i0 = get_global_id(1) * WM;
    size_t j0 = get_global_id(0) * WN;
    // Items past the edges compute on clamped rows / zero columns and store nothing, so that
    // every item reaches the barriers.
    bool full = j0 + WN <= n;
    size_t ia[WM];
    VT acc[WM];
    for (int r = 0; r < WM; r++) {
        ia[r] = min(i0 + r, (size_t)(m - 1));
        acc[r] = (VT)(0.0f);
    }
#if TK > 0
    for (size_t k0 = 0; k0 < k; k0 += TK) {
        size_t k1 = min(k0 + TK, (size_t)k);
#else
    {
        size_t k0 = 0, k1 = k;
#endif
#if !TRANS_B
        if (full) {
            for (size_t p = k0; p < k1; p++) {
                VT bv = LDV(bm, p * n + j0);
                for (int r = 0; r < WM; r++) {
                    acc[r] = fma((VT)(A_AT(ia[r], p)), bv, acc[r]);
                }
            }
        } else
#endif
        {
            for (size_t p = k0; p < k1; p++) {
                VT bv = b_gather(bm, p, j0, n, k);
                for (int r = 0; r < WM; r++) {
                    acc[r] = fma((VT)(A_AT(ia[r], p)), bv, acc[r]);
                }
            }
        }
#if TK > 0
        // No data is exchanged: the barrier makes every item of the group finish this K
        // block before any starts the next, so the block of B stays in cache across them.
        barrier(CLK_LOCAL_MEM_FENCE);
#endif
    }
    if (i0 >= m || j0 >= n) {
        return;
    }
    for (int r = 0; r < WM; r++) {
        size_t i = i0 + r;
        if (i >= m) {
            break;
        }
        float v[WN];
        VCAT(vstore, WN)(acc[r], 0, v);
        for (int c = 0; c < WN; c++) {
            size_t j = j0 + c;
            if (j >= n) {
                break;
            }
            size_t o = (batch * m + i) * n + j;
            float x = v[c] * scale;
            if (has_bias) {
                x += LD(bias, j);
            }
            x = activate(x, act);
            if (has_res) {
                x += LD(res, o);
            }
            ST(y, o, x);
        }
    }
}
#endif // GEMM_VEC
