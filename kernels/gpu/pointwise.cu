#include "omnifuse_gpu.h"
// pointwise.cu — elementwise ops: GELU, ReLU, scale, add/mul with suffix broadcast, quantize to
// i8 (per tensor, or per row for the INT8 GEMM), dequantize from i8/i32.
//
// Algorithm (the one of kernels/opencl/pointwise.cl): one thread per output element, no shared
// memory, in a grid-stride loop (so any grid size covers any n). Add/mul read b[i % nb] (b is a
// suffix of a's shape, so it repeats along a's leading axes); on i32 they wrap (computed on
// unsigned, where overflow is defined). Quantize computes round(x / scale) in f32 (IEEE
// division, round half away from zero), NaN → 0, clamped to [−127, 127]; dequantize is
// (float)x · scale. quantize_rows gives each row to one warp: lanes stride over the row for
// max|x| (exact in any order), scale = amax / 127 (1 for a row with no finite non-zero maximum)
// is stored by lane 0, then the lanes quantise the row with it — the same f32 steps as the CPU
// tiers, so the i8 values agree bit for bit.
//
// Symbols: gelu_/relu_{f32,f16,bf16}(x, y, n); scale_{f32,f16,bf16}(x, y, n, factor);
//   add_/mul_{f32,f16,bf16,i32}(a, b, y, n, nb); quantize_{f32,f16,bf16}(x, y_i8, n, scale);
//   quantize_rows_{f32,f16,bf16}(x, y_i8, scales_f32, rows, k);
//   dequantize_{i8,i32}(x, y_f32, n, scale).
// Launch shape: 1-D, block PW_BLOCK threads, any grid ≥ 1 (the host uses ceil(n / PW_BLOCK)
// capped at 2²⁰ blocks; quantize_rows: ceil(rows · 32 / PW_BLOCK) so that a 32-lane warp gets
// each row; wider warps stride over the rest).
// Limits: none beyond 64-bit indexing.

#ifndef PW_BLOCK
#define PW_BLOCK 256
#endif

#define PW_LOOP(i, n)                                                                                              \
    for (of_u64 i = (of_u64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (of_u64)gridDim.x * blockDim.x)

OF_DEV signed char pw_quant(float x, float s) {
    float q = roundf(__fdiv_rn(x, s));
    if (q != q) {
        return 0;
    }
    return (signed char)fminf(fmaxf(q, -127.0f), 127.0f);
}

#define PW_FLOAT(DT, T)                                                                                            \
    extern "C" __global__ void __launch_bounds__(PW_BLOCK) gelu_##DT(const T* x, T* y, of_u64 n) {                 \
        PW_LOOP(i, n) { of_store_f32<T>(y, i, of_gelu(of_load_f32<T>(x, i))); }                                    \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(PW_BLOCK) relu_##DT(const T* x, T* y, of_u64 n) {                 \
        PW_LOOP(i, n) {                                                                                            \
            float v = of_load_f32<T>(x, i);                                                                        \
            of_store_f32<T>(y, i, v > 0.0f ? v : 0.0f);                                                            \
        }                                                                                                          \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(PW_BLOCK) scale_##DT(const T* x, T* y, of_u64 n, float factor) {  \
        PW_LOOP(i, n) { of_store_f32<T>(y, i, of_load_f32<T>(x, i) * factor); }                                    \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(PW_BLOCK)                                                         \
        add_##DT(const T* a, const T* b, T* y, of_u64 n, of_u64 nb) {                                              \
        PW_LOOP(i, n) { of_store_f32<T>(y, i, of_load_f32<T>(a, i) + of_load_f32<T>(b, i % nb)); }                 \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(PW_BLOCK)                                                         \
        mul_##DT(const T* a, const T* b, T* y, of_u64 n, of_u64 nb) {                                              \
        PW_LOOP(i, n) { of_store_f32<T>(y, i, of_load_f32<T>(a, i) * of_load_f32<T>(b, i % nb)); }                 \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(PW_BLOCK)                                                         \
        quantize_##DT(const T* x, of_i8* y, of_u64 n, float scale) {                                               \
        PW_LOOP(i, n) { y[i] = pw_quant(of_load_f32<T>(x, i), scale); }                                            \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(PW_BLOCK)                                                         \
        quantize_rows_##DT(const T* x, of_i8* y, float* scales, of_u64 rows, of_u64 k) {                           \
        quantize_rows<T>(x, y, scales, rows, k);                                                                   \
    }

template <typename T> OF_DEV void quantize_rows(const T* x, of_i8* y, float* scales, of_u64 rows, of_u64 k) {
    const unsigned lane = threadIdx.x % OF_WARP;
    const of_u64 warps = ((of_u64)gridDim.x * blockDim.x) / OF_WARP;
    // Whole warps take the loop together (blockDim is a multiple of the warp), so the
    // shuffles below always see every lane.
    for (of_u64 r = ((of_u64)blockIdx.x * blockDim.x + threadIdx.x) / OF_WARP; r < rows; r += warps) {
        const T* xr = x + r * k;
        float amax = 0.0f;
        for (of_u64 p = lane; p < k; p += OF_WARP) {
            amax = fmaxf(amax, fabsf(of_load_f32<T>(xr, p)));
        }
        amax = of_warp_max(amax);
        float scale = (amax > 0.0f && isfinite(amax)) ? __fdiv_rn(amax, 127.0f) : 1.0f;
        if (lane == 0) {
            scales[r] = scale;
        }
        for (of_u64 p = lane; p < k; p += OF_WARP) {
            y[r * k + p] = pw_quant(of_load_f32<T>(xr, p), scale);
        }
    }
}

PW_FLOAT(f32, float)
PW_FLOAT(f16, of_f16)
PW_FLOAT(bf16, of_bf16)

extern "C" __global__ void __launch_bounds__(PW_BLOCK) add_i32(const int* a, const int* b, int* y, of_u64 n, of_u64 nb) {
    PW_LOOP(i, n) { y[i] = (int)((unsigned)a[i] + (unsigned)b[i % nb]); }
}

extern "C" __global__ void __launch_bounds__(PW_BLOCK) mul_i32(const int* a, const int* b, int* y, of_u64 n, of_u64 nb) {
    PW_LOOP(i, n) { y[i] = (int)((unsigned)a[i] * (unsigned)b[i % nb]); }
}

extern "C" __global__ void __launch_bounds__(PW_BLOCK) dequantize_i8(const of_i8* x, float* y, of_u64 n, float scale) {
    PW_LOOP(i, n) { y[i] = (float)x[i] * scale; }
}

extern "C" __global__ void __launch_bounds__(PW_BLOCK) dequantize_i32(const int* x, float* y, of_u64 n, float scale) {
    PW_LOOP(i, n) { y[i] = (float)x[i] * scale; }
}
