#include "omnifuse_gpu.h"
// conv.cu — 1-D convolution along the sequence with "same" padding and a stride (TextCNN, audio
// subsampling).
//
// Algorithm (the one of kernels/opencl/conv.cl): direct convolution, one thread per output
// element (b, t, co) in a grid-stride loop; it sums x[b, t·stride + r − (W−1)/2, ci] ·
// w[r, ci, co] over r then ci with an fma chain in f32 (zero outside 0..L), starting from
// bias[co] when present, and rounds once on store. Neighbouring threads take neighbouring co, so
// weight reads are coalesced and x reads are broadcast.
//
// Symbols: conv1d_{f32,f16,bf16}(x, w, bias, y, b, l, cin, width, cout, stride, has_bias).
// Launch shape: 1-D, block CONV_BLOCK threads, any grid ≥ 1 (the host uses
// ceil(B·Lout·Cout / CONV_BLOCK) capped at 2²⁰ blocks).
// Limits: none beyond 64-bit indexing (no shared-memory tiling — these convolutions are small
// next to the GEMMs around them).

#ifndef CONV_BLOCK
#define CONV_BLOCK 256
#endif

template <typename T>
OF_DEV void conv1d(const T* x, const T* w, const T* bias, T* y, of_u64 b, of_u64 l, of_u64 cin, of_u64 width,
                   of_u64 cout, of_u64 stride, int has_bias) {
    const of_u64 lout = (l + stride - 1) / stride;
    const long long pad = (long long)((width - 1) / 2);
    for (of_u64 g = (of_u64)blockIdx.x * blockDim.x + threadIdx.x; g < b * lout * cout;
         g += (of_u64)gridDim.x * blockDim.x) {
        const of_u64 co = g % cout;
        const of_u64 t = (g / cout) % lout;
        const of_u64 bi = g / (cout * lout);
        float acc = has_bias ? of_load_f32<T>(bias, co) : 0.0f;
        for (of_u64 r = 0; r < width; r++) {
            const long long src = (long long)(t * stride + r) - pad;
            if (src < 0 || src >= (long long)l) {
                continue;
            }
            const T* xr = x + (bi * l + (of_u64)src) * cin;
            for (of_u64 ci = 0; ci < cin; ci++) {
                acc = fmaf(of_load_f32<T>(xr, ci), of_load_f32<T>(w, (r * cin + ci) * cout + co), acc);
            }
        }
        of_store_f32<T>(y, g, acc);
    }
}

#define CONV(DT, T)                                                                                                \
    extern "C" __global__ void __launch_bounds__(CONV_BLOCK)                                                       \
        conv1d_##DT(const T* x, const T* w, const T* bias, T* y, of_u64 b, of_u64 l, of_u64 cin, of_u64 width,     \
                    of_u64 cout, of_u64 stride, int has_bias) {                                                    \
        conv1d<T>(x, w, bias, y, b, l, cin, width, cout, stride, has_bias);                                        \
    }

CONV(f32, float)
CONV(f16, of_f16)
CONV(bf16, of_bf16)
