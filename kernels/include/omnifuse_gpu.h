// omnifuse GPU compat header: one source for CUDA (NVRTC) and HIP (hiprtc / hipcc).
//
// Every file of kernels/gpu includes this header first and nothing else: the runtime
// compilers get no system include path, so storage types and conversions are defined here
// from raw bits rather than taken from cuda_fp16.h / hip_fp16.h.
//
// - Storage types: `of_f16` is the 16-bit pattern (unsigned short), `of_bf16` a struct around
//   one (so the two specialise templates apart); all arithmetic is f32. `of_load_f32<T>` / `of_store_f32<T>` convert any storage type.
// - f16 conversions round to nearest even (PTX cvt.rn on CUDA, _Float16 on HIP); bf16 is
//   converted with integer arithmetic (round to nearest even, NaN kept quiet).
// - `OF_WARP` is the hardware warp/wavefront width: 32 on NVIDIA, `warpSize` (64 on CDNA,
//   32 on RDNA) on AMD. Kernels never hard-code 32 outside tensor-core paths, which are
//   CUDA-only (`OF_CUDA`) and guarded by `__CUDA_ARCH__ >= 800`.
// - `of_gelu` is the erf form the CPU reference and the OpenCL kernels use.
#pragma once

#if defined(__HIP_PLATFORM_AMD__) || defined(__HIPCC__) || defined(__HIPCC_RTC__)
#define OF_HIP 1
#if !defined(__HIPCC_RTC__)
#include <hip/hip_runtime.h>
#endif
#define OF_WARP warpSize
#else
#define OF_CUDA 1
#define OF_WARP 32
#endif

typedef unsigned short of_f16;
struct of_bf16 {
    unsigned short bits;
};
typedef signed char of_i8;
typedef unsigned long long of_u64;

#define OF_DEV __device__ __forceinline__

OF_DEV float of_f16_to_f32(of_f16 h) {
#if defined(OF_CUDA)
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#else
    return (float)__builtin_bit_cast(_Float16, h);
#endif
}

OF_DEV of_f16 of_f32_to_f16(float f) {
#if defined(OF_CUDA)
    of_f16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#else
    return __builtin_bit_cast(of_f16, (_Float16)f);
#endif
}

OF_DEV float of_bf16_to_f32(of_bf16 b) { return __uint_as_float(((unsigned)b.bits) << 16); }

OF_DEV of_bf16 of_f32_to_bf16(float f) {
    unsigned u = __float_as_uint(f);
    of_bf16 b;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        b.bits = (unsigned short)((u >> 16) | 0x40u);
        return b;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    b.bits = (unsigned short)(u >> 16);
    return b;
}

// Typed load/store through f32, specialised per storage type.
template <typename T> OF_DEV float of_load_f32(const T* p, of_u64 i);
template <> OF_DEV float of_load_f32<float>(const float* p, of_u64 i) { return p[i]; }
template <> OF_DEV float of_load_f32<of_f16>(const of_f16* p, of_u64 i) { return of_f16_to_f32(p[i]); }
template <> OF_DEV float of_load_f32<of_bf16>(const of_bf16* p, of_u64 i) { return of_bf16_to_f32(p[i]); }
template <> OF_DEV float of_load_f32<of_i8>(const of_i8* p, of_u64 i) { return (float)p[i]; }
template <> OF_DEV float of_load_f32<int>(const int* p, of_u64 i) { return (float)p[i]; }

template <typename T> OF_DEV void of_store_f32(T* p, of_u64 i, float v);
template <> OF_DEV void of_store_f32<float>(float* p, of_u64 i, float v) { p[i] = v; }
template <> OF_DEV void of_store_f32<of_f16>(of_f16* p, of_u64 i, float v) { p[i] = of_f32_to_f16(v); }
template <> OF_DEV void of_store_f32<of_bf16>(of_bf16* p, of_u64 i, float v) { p[i] = of_f32_to_bf16(v); }

// GELU, erf form, written 0.5·x·erfc(−x/√2): erfc keeps full relative precision for very
// negative x where 1 + erf cancels.
OF_DEV float of_gelu(float x) { return 0.5f * x * erfcf(-x * 0.70710678118654752f); }

// Activation codes shared with the host: 0 none, 1 ReLU, 2 GELU.
OF_DEV float of_act(float x, int act) {
    return act == 1 ? fmaxf(x, 0.0f) : (act == 2 ? of_gelu(x) : x);
}

// Warp-wide reductions over OF_WARP lanes.
OF_DEV float of_warp_sum(float v) {
    for (int o = OF_WARP / 2; o > 0; o >>= 1) {
#if defined(OF_CUDA)
        v += __shfl_xor_sync(0xffffffffu, v, o);
#else
        v += __shfl_xor(v, o);
#endif
    }
    return v;
}

OF_DEV float of_warp_max(float v) {
    for (int o = OF_WARP / 2; o > 0; o >>= 1) {
#if defined(OF_CUDA)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
#else
        v = fmaxf(v, __shfl_xor(v, o));
#endif
    }
    return v;
}
