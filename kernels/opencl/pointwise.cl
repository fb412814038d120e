// pointwise.cl — elementwise ops: GELU, ReLU, scale, add/mul with suffix broadcast,
// quantize to i8 (per tensor, or per row for the INT8 GEMM), dequantize from i8/i32.
//
// Algorithm: one work-item per output element, no local memory. Add/mul read `b[i % nb]`
// (b is a suffix of a's shape, so it repeats along a's leading axes); on i32 they wrap
// (computed on uint, where overflow is defined). Quantize computes round(x / scale) in f32
// (round half away from zero), NaN → 0, clamped to [-127, 127]; dequantize is
// (float)x · scale.
// Launch shape: 1-D, global = n rounded up to the work-group size; items past n return.
// Limits: none beyond size_t indexing.

#ifdef IS_FLOAT
__kernel void K(gelu)(__global const T* x, __global T* y, ulong n) {
    size_t i = get_global_id(0);
    if (i < n) {
        ST(y, i, gelu_f(LD(x, i)));
    }
}

__kernel void K(relu)(__global const T* x, __global T* y, ulong n) {
    size_t i = get_global_id(0);
    if (i < n) {
        float v = LD(x, i);
        ST(y, i, v > 0.0f ? v : 0.0f);
    }
}

__kernel void K(scale)(__global const T* x, __global T* y, ulong n, float factor) {
    size_t i = get_global_id(0);
    if (i < n) {
        ST(y, i, LD(x, i) * factor);
    }
}

#endif

#if defined(T_I32)
__kernel void K(add)(__global const int* a, __global const int* b, __global int* y, ulong n, ulong nb) {
    size_t i = get_global_id(0);
    if (i < n) {
        y[i] = as_int(as_uint(a[i]) + as_uint(b[i % nb]));
    }
}

__kernel void K(mul)(__global const int* a, __global const int* b, __global int* y, ulong n, ulong nb) {
    size_t i = get_global_id(0);
    if (i < n) {
        y[i] = as_int(as_uint(a[i]) * as_uint(b[i % nb]));
    }
}
#elif defined(IS_FLOAT)
__kernel void K(add)(__global const T* a, __global const T* b, __global T* y, ulong n, ulong nb) {
    size_t i = get_global_id(0);
    if (i < n) {
        ST(y, i, LD(a, i) + LD(b, i % nb));
    }
}

__kernel void K(mul)(__global const T* a, __global const T* b, __global T* y, ulong n, ulong nb) {
    size_t i = get_global_id(0);
    if (i < n) {
        ST(y, i, LD(a, i) * LD(b, i % nb));
    }
}

__kernel void K(quantize)(__global const T* x, __global char* y, ulong n, float scale) {
    size_t i = get_global_id(0);
    if (i < n) {
        float q = round(LD(x, i) / scale);
        y[i] = isnan(q) ? (char)0 : (char)clamp(q, -127.0f, 127.0f);
    }
}

// Per-row (per-token) dynamic quantisation for the INT8 GEMM, one work-item per row:
// scale = max|x| / 127 (1 for a row with no finite non-zero maximum), q = round(x / scale)
// clamped to [-127, 127], NaN → 0 — the same f32 steps as the CPU tiers, so the i8 values
// agree bit for bit.
__kernel void K(quantize_rows)(__global const T* x, __global char* y, __global float* scales, ulong rows, ulong k) {
    size_t r = get_global_id(0);
    if (r >= rows) {
        return;
    }
    float amax = 0.0f;
    for (size_t p = 0; p < k; p++) {
        float a = fabs(LD(x, r * k + p));
        if (a > amax) {
            amax = a;
        }
    }
    float scale = (amax > 0.0f && isfinite(amax)) ? amax / 127.0f : 1.0f;
    scales[r] = scale;
    for (size_t p = 0; p < k; p++) {
        float q = round(LD(x, r * k + p) / scale);
        y[r * k + p] = isnan(q) ? (char)0 : (char)clamp(q, -127.0f, 127.0f);
    }
}
#endif

#if defined(T_I8) || defined(T_I32)
__kernel void K(dequantize)(__global const T* x, __global float* y, ulong n, float scale) {
    size_t i = get_global_id(0);
    if (i < n) {
        y[i] = convert_float(x[i]) * scale;
    }
}
#endif
