#include "omnifuse_gpu.h"
// gemm.cu — the general (SIMT) batched GEMM with a fused epilogue:
// y = act(scale · (A·B) + bias) + residual for f32/f16/bf16 storage (f32 accumulate), i8 × i8 → i32
// (integer multiply-add that wraps, no epilogue), and the INT8 GEMM with the dequantising
// epilogue fused (qgemm). The tensor-core kernels live elsewhere; this is the path for every
// dtype and shape they decline.
//
// Algorithm (the one of kernels/opencl/gemm.cl, gemm_tiled): each block computes a TM × TN tile
// of one batch's output. The K loop stages a TM × TK slab of A and a TK × TN slab of B in shared
// memory (widened to the accumulator type, zero-filled past the matrix edges; rows padded by one
// word so the transposing stores do not all hit one bank), then every thread multiplies a
// WM × WN register block out of them: rows ty + r·(TM/WM), columns tx + c·(TN/WN) (strided, so
// neighbouring threads read neighbouring shared words). Slab loads are ordered so that
// consecutive threads read consecutive addresses of the stored layout for each of the four
// transpose combinations (symbol infix nn/nt/tn/tt: A stored [K, M] when the first letter is t,
// B stored [N, K] when the second is t). B is shared by every batch when b_stride is 0
// (weights), else batch b reads B + b·K·N. Float products accumulate with fma (one rounding per
// step, k ascending); i8 products are widened to unsigned and summed with integer multiply-add
// (wrapping, as the op defines). The epilogue runs on the accumulators and rounds once on store.
//
// QGEMM (symbols qgemm_tiled[_requant]_<A dtype>; B i8 [N, K]): the i32 sum becomes
// v = acc · (a_scale[row] · scale) · b_scale[col] in f32, then bias, activation and residual
// (all f32), stored as f32, or (requant) as i8 clamp(round(v / requant), −127, 127), NaN → 0.
// a_scale has one entry per row of all batches (a_scale_rows != 0) or one for all. When A is
// f32/f16/bf16 it is quantised per row on the fly, with the same f32 steps as the
// quantize_rows kernel and the CPU tiers: each block first finds max|A[row, ·]| of its TM rows
// (a warp per row; max is exact in any order), scale = amax / 127 (1 when amax is 0 or not
// finite), and the slab loader stores round(x / scale) clamped to [−127, 127] (NaN → 0) — the
// same i8 values a separate quantize pass would give, without a temporary buffer.
//
// Symbols: gemm_tiled_{nn,nt,tn,tt}_{f32,f16,bf16,i8}
//   (a, b, bias, res, y, m, n, k, batches, b_stride, scale, has_bias, act, has_res)
//   bias/res/y are of the storage type (i32 for i8; bias/res unused there).
// qgemm_tiled_{i8,f32,f16,bf16}, qgemm_tiled_requant_{i8,f32,f16,bf16}
//   (a, b, a_scale, b_scale, a_scale_rows, requant, bias, res, y, rows, n, k, scale, has_bias,
//    act, has_res); a_scale is unused for float A; bias/res f32; y f32 or i8 (requant).
// Launch shape: block (TN/WN, TM/WM, 1); grid (ceil(M/TM), ceil(N/TN), min(batches, 65535));
// blocks loop over the batches with stride gridDim.z.
// Defines: TM, TN, TK, WM, WN (TM % WM == 0, TN % WN == 0, (TM/WM)·(TN/WN) ≤ 1024; defaults
// 64, 64, 16, 4, 4). Shared memory (static): TK·(TM + TN + 2) accumulator words + TM floats
// (8.4 KiB at the defaults). Limits: M tiles ≤ 2³¹−1, N tiles ≤ 65535.

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

#define RX (TN / WN)
#define RY (TM / WM)
#define NT (RX * RY)

#if (TM % WM) != 0 || (TN % WN) != 0
#error "TM must be a multiple of WM and TN of WN"
#endif

OF_DEV float gemm_madd(float a, float b, float c) { return fmaf(a, b, c); }
OF_DEV unsigned gemm_madd(unsigned a, unsigned b, unsigned c) { return c + a * b; }

// Round-to-nearest i8 quantisation, half away from zero, NaN → 0 (IEEE division whatever
// the compile flags).
OF_DEV signed char gemm_quant(float x, float s) {
    float q = roundf(__fdiv_rn(x, s));
    if (q != q) {
        return 0;
    }
    return (signed char)fminf(fmaxf(q, -127.0f), 127.0f);
}

// The shared K loop: acc += A[m0.., k] · B[k, n0..]. `la(i, p)` / `lb(p, j)` return the widened
// element (i < m, j < n, p < k are checked here).
template <typename ACC, bool TA, bool TB, class LA, class LB>
OF_DEV void gemm_mainloop(ACC (&acc)[WM][WN], ACC (*As)[TM + 1], ACC (*Bs)[TN + 1], of_u64 m, of_u64 n, of_u64 k,
                          of_u64 m0, of_u64 n0, int tx, int ty, int tid, LA la, LB lb) {
    for (int r = 0; r < WM; r++) {
        for (int c = 0; c < WN; c++) {
            acc[r][c] = 0;
        }
    }
    for (of_u64 k0 = 0; k0 < k; k0 += TK) {
        for (int l = tid; l < TM * TK; l += NT) {
            int mm, kk;
            if (TA) {
                mm = l % TM;
                kk = l / TM;
            } else {
                kk = l % TK;
                mm = l / TK;
            }
            of_u64 gi = m0 + mm;
            of_u64 gp = k0 + kk;
            As[kk][mm] = (gi < m && gp < k) ? la(gi, gp) : (ACC)0;
        }
        for (int l = tid; l < TN * TK; l += NT) {
            int nn, kk;
            if (TB) {
                kk = l % TK;
                nn = l / TK;
            } else {
                nn = l % TN;
                kk = l / TN;
            }
            of_u64 gj = n0 + nn;
            of_u64 gp = k0 + kk;
            Bs[kk][nn] = (gj < n && gp < k) ? lb(gp, gj) : (ACC)0;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TK; kk++) {
            ACC ar[WM];
            ACC br[WN];
#pragma unroll
            for (int r = 0; r < WM; r++) {
                ar[r] = As[kk][ty + r * RY];
            }
#pragma unroll
            for (int c = 0; c < WN; c++) {
                br[c] = Bs[kk][tx + c * RX];
            }
#pragma unroll
            for (int r = 0; r < WM; r++) {
#pragma unroll
                for (int c = 0; c < WN; c++) {
                    acc[r][c] = gemm_madd(ar[r], br[c], acc[r][c]);
                }
            }
        }
        __syncthreads();
    }
}

// Float storage: f32 accumulate, fused epilogue, one rounding on store.
template <typename T, bool TA, bool TB>
OF_DEV void gemm_float(const T* a_all, const T* b_all, const T* bias, const T* res, T* y, of_u64 m, of_u64 n,
                       of_u64 k, of_u64 batches, of_u64 b_stride, float scale, int has_bias, int act, int has_res) {
    __shared__ float As[TK][TM + 1];
    __shared__ float Bs[TK][TN + 1];
    const of_u64 m0 = (of_u64)blockIdx.x * TM;
    const of_u64 n0 = (of_u64)blockIdx.y * TN;
    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const int tid = ty * RX + tx;
    for (of_u64 batch = blockIdx.z; batch < batches; batch += gridDim.z) {
        const T* a = a_all + batch * m * k;
        const T* bm = b_all + batch * b_stride;
        auto la = [=](of_u64 i, of_u64 p) { return TA ? of_load_f32<T>(a, p * m + i) : of_load_f32<T>(a, i * k + p); };
        auto lb = [=](of_u64 p, of_u64 j) {
            return TB ? of_load_f32<T>(bm, j * k + p) : of_load_f32<T>(bm, p * n + j);
        };
        float acc[WM][WN];
        gemm_mainloop<float, TA, TB>(acc, As, Bs, m, n, k, m0, n0, tx, ty, tid, la, lb);
#pragma unroll
        for (int r = 0; r < WM; r++) {
            of_u64 i = m0 + ty + r * RY;
            if (i >= m) {
                continue;
            }
#pragma unroll
            for (int c = 0; c < WN; c++) {
                of_u64 j = n0 + tx + c * RX;
                if (j >= n) {
                    continue;
                }
                of_u64 o = (batch * m + i) * n + j;
                float v = acc[r][c] * scale;
                if (has_bias) {
                    v += of_load_f32<T>(bias, j);
                }
                v = of_act(v, act);
                if (has_res) {
                    v += of_load_f32<T>(res, o);
                }
                of_store_f32<T>(y, o, v);
            }
        }
    }
}

// i8 × i8 → i32, wrapping, no epilogue.
template <bool TA, bool TB>
OF_DEV void gemm_i8(const of_i8* a_all, const of_i8* b_all, int* y, of_u64 m, of_u64 n, of_u64 k, of_u64 batches,
                    of_u64 b_stride) {
    __shared__ unsigned As[TK][TM + 1];
    __shared__ unsigned Bs[TK][TN + 1];
    const of_u64 m0 = (of_u64)blockIdx.x * TM;
    const of_u64 n0 = (of_u64)blockIdx.y * TN;
    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const int tid = ty * RX + tx;
    for (of_u64 batch = blockIdx.z; batch < batches; batch += gridDim.z) {
        const of_i8* a = a_all + batch * m * k;
        const of_i8* bm = b_all + batch * b_stride;
        auto la = [=](of_u64 i, of_u64 p) { return (unsigned)(int)(TA ? a[p * m + i] : a[i * k + p]); };
        auto lb = [=](of_u64 p, of_u64 j) { return (unsigned)(int)(TB ? bm[j * k + p] : bm[p * n + j]); };
        unsigned acc[WM][WN];
        gemm_mainloop<unsigned, TA, TB>(acc, As, Bs, m, n, k, m0, n0, tx, ty, tid, la, lb);
#pragma unroll
        for (int r = 0; r < WM; r++) {
            of_u64 i = m0 + ty + r * RY;
            if (i >= m) {
                continue;
            }
#pragma unroll
            for (int c = 0; c < WN; c++) {
                of_u64 j = n0 + tx + c * RX;
                if (j < n) {
                    y[(batch * m + i) * n + j] = (int)acc[r][c];
                }
            }
        }
    }
}

// The INT8 GEMM with the dequantising epilogue. TA_ is A's storage type: of_i8 (already
// quantised, a_scale given) or a float type (quantised per row here).
template <typename TA_, bool REQUANT>
OF_DEV void qgemm(const TA_* a, const of_i8* bm, const float* a_scale, const float* b_scale, of_u64 a_scale_rows,
                  float requant, const float* bias, const float* res, void* y_raw, of_u64 m, of_u64 n, of_u64 k,
                  float scale, int has_bias, int act, int has_res) {
    __shared__ unsigned As[TK][TM + 1];
    __shared__ unsigned Bs[TK][TN + 1];
    __shared__ float Sa[TM];
    constexpr bool QUANT_A = !(sizeof(TA_) == 1);
    const of_u64 m0 = (of_u64)blockIdx.x * TM;
    const of_u64 n0 = (of_u64)blockIdx.y * TN;
    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const int tid = ty * RX + tx;
    if (QUANT_A) {
        // Row scales of this block's rows: a warp per row, lanes stride over k.
        const int lane = tid % OF_WARP;
        const int warps = NT / OF_WARP > 0 ? NT / OF_WARP : 1;
        for (int mm = tid / OF_WARP; mm < TM; mm += warps) {
            of_u64 i = m0 + mm;
            float amax = 0.0f;
            if (i < m) {
                for (of_u64 p = lane; p < k; p += OF_WARP) {
                    amax = fmaxf(amax, fabsf(of_load_f32<TA_>(a, i * k + p)));
                }
            }
            amax = of_warp_max(amax);
            if (lane == 0) {
                Sa[mm] = (amax > 0.0f && isfinite(amax)) ? __fdiv_rn(amax, 127.0f) : 1.0f;
            }
        }
        __syncthreads();
    }
    auto la = [=](of_u64 i, of_u64 p) {
        if (QUANT_A) {
            return (unsigned)(int)gemm_quant(of_load_f32<TA_>(a, i * k + p), Sa[i - m0]);
        }
        return (unsigned)(int)((const of_i8*)a)[i * k + p];
    };
    auto lb = [=](of_u64 p, of_u64 j) { return (unsigned)(int)bm[j * k + p]; };
    unsigned acc[WM][WN];
    gemm_mainloop<unsigned, false, true>(acc, As, Bs, m, n, k, m0, n0, tx, ty, tid, la, lb);
#pragma unroll
    for (int r = 0; r < WM; r++) {
        of_u64 i = m0 + ty + r * RY;
        if (i >= m) {
            continue;
        }
        float sa = (QUANT_A ? Sa[ty + r * RY] : a_scale[a_scale_rows ? i : 0]) * scale;
#pragma unroll
        for (int c = 0; c < WN; c++) {
            of_u64 j = n0 + tx + c * RX;
            if (j >= n) {
                continue;
            }
            of_u64 o = i * n + j;
            float v = (float)(int)acc[r][c] * sa * b_scale[j];
            if (has_bias) {
                v += bias[j];
            }
            v = of_act(v, act);
            if (has_res) {
                v += res[o];
            }
            if (REQUANT) {
                ((of_i8*)y_raw)[o] = gemm_quant(v, requant);
            } else {
                ((float*)y_raw)[o] = v;
            }
        }
    }
}

#define GEMM_FLOAT(TR, TA, TB, DT, T)                                                                              \
    extern "C" __global__ void __launch_bounds__(NT, 1)                                                               \
        gemm_tiled_##TR##_##DT(const T* a, const T* b, const T* bias, const T* res, T* y, of_u64 m, of_u64 n,      \
                               of_u64 k, of_u64 batches, of_u64 b_stride, float scale, int has_bias, int act,      \
                               int has_res) {                                                                      \
        gemm_float<T, TA, TB>(a, b, bias, res, y, m, n, k, batches, b_stride, scale, has_bias, act, has_res);      \
    }

#define GEMM_I8(TR, TA, TB)                                                                                        \
    extern "C" __global__ void __launch_bounds__(NT, 1)                                                               \
        gemm_tiled_##TR##_i8(const of_i8* a, const of_i8* b, const int* bias, const int* res, int* y, of_u64 m,    \
                             of_u64 n, of_u64 k, of_u64 batches, of_u64 b_stride, float scale, int has_bias,       \
                             int act, int has_res) {                                                               \
        gemm_i8<TA, TB>(a, b, y, m, n, k, batches, b_stride);                                                      \
    }

#define GEMM_ALL_TRANS(DT, T)                                                                                      \
    GEMM_FLOAT(nn, false, false, DT, T)                                                                            \
    GEMM_FLOAT(nt, false, true, DT, T)                                                                             \
    GEMM_FLOAT(tn, true, false, DT, T)                                                                             \
    GEMM_FLOAT(tt, true, true, DT, T)

GEMM_ALL_TRANS(f32, float)
GEMM_ALL_TRANS(f16, of_f16)
GEMM_ALL_TRANS(bf16, of_bf16)
GEMM_I8(nn, false, false)
GEMM_I8(nt, false, true)
GEMM_I8(tn, true, false)
GEMM_I8(tt, true, true)

#define QGEMM(VAR, RQ, DT, T, Y)                                                                                   \
    extern "C" __global__ void __launch_bounds__(NT, 1) qgemm_##VAR##_##DT(                                           \
        const T* a, const of_i8* b, const float* a_scale, const float* b_scale, of_u64 a_scale_rows,              \
        float requant, const float* bias, const float* res, Y* y, of_u64 m, of_u64 n, of_u64 k, float scale,       \
        int has_bias, int act, int has_res) {                                                                      \
        qgemm<T, RQ>(a, b, a_scale, b_scale, a_scale_rows, requant, bias, res, y, m, n, k, scale, has_bias, act,   \
                     has_res);                                                                                     \
    }

#define QGEMM_BOTH(DT, T)                                                                                          \
    QGEMM(tiled, false, DT, T, float)                                                                              \
    QGEMM(tiled_requant, true, DT, T, of_i8)

QGEMM_BOTH(i8, of_i8)
QGEMM_BOTH(f32, float)
QGEMM_BOTH(f16, of_f16)
QGEMM_BOTH(bf16, of_bf16)
