#include "omnifuse_gpu.h"
// norm.cu — row reductions over the last axis: layer norm, softmax, and pooling (mean/max over
// a middle axis).
//
// Algorithm (the one of kernels/opencl/norm.cl): layer norm and softmax give one block of WG
// threads to each row; threads stride over the row, then the block combines their partials —
// a shuffle reduction inside each warp, then every thread folds the per-warp results from
// shared memory in warp order (so all threads get the same value). Layer norm: mean first, then
// the biased variance around it (two passes, as the reference does), y = (x − mean) ·
// (1 / sqrt(var + eps)) · gamma + beta; softmax: max, then the sum of exp(x − max), y =
// exp(x − max) / sum. Division and square root are IEEE-rounded whatever the compile flags.
// Pooling is one thread per output element (grid-stride), looping over the reduced axis
// (mean: compensated f32 sum / len; max: fmax).
//
// Symbols: layernorm_{f32,f16,bf16}(x, gamma, beta, y, n, eps); softmax_{..}(x, y, n);
//   pool_{..}(x, y, outer, len, inner, kind) with kind 0 mean, 1 max.
// Launch shape: layernorm/softmax: block (WG), grid (rows) (rows ≤ 2³¹−1); pool: block (WG),
//   any grid ≥ 1 (the host uses ceil(outer·inner / WG) capped at 2²⁰).
// Defines: WG (threads per block, a multiple of the warp width, ≤ 1024; default 256).
// Shared memory (static): WG / 32 floats. Limits: none beyond 64-bit indexing.

#ifndef WG
#define WG 256
#endif

// Upper bound on the number of warps in a block (the narrowest warp has 32 lanes).
#define NORM_MAX_WARPS ((WG + 31) / 32)

#define NORM_NEG_INF __uint_as_float(0xff800000u)

// Sum (MAX false) or max (MAX true) of every thread's `v` across the block; all threads get it.
template <bool MAX> OF_DEV float block_reduce(float v, float* red) {
    v = MAX ? of_warp_max(v) : of_warp_sum(v);
    const int lane = threadIdx.x % OF_WARP;
    const int w = threadIdx.x / OF_WARP;
    const int nw = blockDim.x / OF_WARP;
    if (lane == 0) {
        red[w] = v;
    }
    __syncthreads();
    float r = red[0];
    for (int i = 1; i < nw; i++) {
        r = MAX ? fmaxf(r, red[i]) : r + red[i];
    }
    __syncthreads();
    return r;
}

template <typename T>
OF_DEV void layernorm(const T* x, const T* gamma, const T* beta, T* y, of_u64 n, float eps) {
    __shared__ float red[NORM_MAX_WARPS];
    const of_u64 row = blockIdx.x;
    const T* xr = x + row * n;
    T* yr = y + row * n;
    float s = 0.0f;
    for (of_u64 j = threadIdx.x; j < n; j += blockDim.x) {
        s += of_load_f32<T>(xr, j);
    }
    const float mean = __fdiv_rn(block_reduce<false>(s, red), (float)n);
    float v = 0.0f;
    for (of_u64 j = threadIdx.x; j < n; j += blockDim.x) {
        float d = of_load_f32<T>(xr, j) - mean;
        v += d * d;
    }
    const float var = __fdiv_rn(block_reduce<false>(v, red), (float)n);
    const float inv = __fdiv_rn(1.0f, __fsqrt_rn(var + eps));
    for (of_u64 j = threadIdx.x; j < n; j += blockDim.x) {
        of_store_f32<T>(yr, j,
                        (of_load_f32<T>(xr, j) - mean) * inv * of_load_f32<T>(gamma, j) + of_load_f32<T>(beta, j));
    }
}

template <typename T> OF_DEV void softmax(const T* x, T* y, of_u64 n) {
    __shared__ float red[NORM_MAX_WARPS];
    const of_u64 row = blockIdx.x;
    const T* xr = x + row * n;
    T* yr = y + row * n;
    float m = NORM_NEG_INF;
    for (of_u64 j = threadIdx.x; j < n; j += blockDim.x) {
        m = fmaxf(m, of_load_f32<T>(xr, j));
    }
    m = block_reduce<true>(m, red);
    float s = 0.0f;
    for (of_u64 j = threadIdx.x; j < n; j += blockDim.x) {
        s += expf(of_load_f32<T>(xr, j) - m);
    }
    s = block_reduce<false>(s, red);
    for (of_u64 j = threadIdx.x; j < n; j += blockDim.x) {
        of_store_f32<T>(yr, j, __fdiv_rn(expf(of_load_f32<T>(xr, j) - m), s));
    }
}

// x is [outer, len, inner]; y is [outer, inner].
template <typename T> OF_DEV void pool(const T* x, T* y, of_u64 outer, of_u64 len, of_u64 inner, int kind) {
    for (of_u64 g = (of_u64)blockIdx.x * blockDim.x + threadIdx.x; g < outer * inner;
         g += (of_u64)gridDim.x * blockDim.x) {
        const of_u64 o = g / inner;
        const of_u64 i = g % inner;
        const T* base = x + o * len * inner + i;
        if (kind == 1) {
            float acc = NORM_NEG_INF;
            for (of_u64 t = 0; t < len; t++) {
                acc = fmaxf(acc, of_load_f32<T>(base, t * inner));
            }
            of_store_f32<T>(y, g, acc);
            continue;
        }
        // Compensated (Kahan) sum: a mean near zero of many values keeps its relative accuracy.
        float acc = 0.0f;
        float comp = 0.0f;
        for (of_u64 t = 0; t < len; t++) {
            float v = of_load_f32<T>(base, t * inner) - comp;
            float s = acc + v;
            comp = (s - acc) - v;
            acc = s;
        }
        of_store_f32<T>(y, g, __fdiv_rn(acc, (float)len));
    }
}

#define NORM(DT, T)                                                                                                \
    extern "C" __global__ void __launch_bounds__(WG)                                                               \
        layernorm_##DT(const T* x, const T* gamma, const T* beta, T* y, of_u64 n, float eps) {                     \
        layernorm<T>(x, gamma, beta, y, n, eps);                                                                   \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(WG) softmax_##DT(const T* x, T* y, of_u64 n) {                    \
        softmax<T>(x, y, n);                                                                                       \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(WG)                                                               \
        pool_##DT(const T* x, T* y, of_u64 outer, of_u64 len, of_u64 inner, int kind) {                            \
        pool<T>(x, y, outer, len, inner, kind);                                                                    \
    }

NORM(f32, float)
NORM(f16, of_f16)
NORM(bf16, of_bf16)
