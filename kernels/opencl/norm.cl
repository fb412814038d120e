// norm.cl — row reductions over the last axis: layer norm, softmax, and pooling (mean/max
// over a middle axis).
//
// Algorithm: layer norm and softmax give one work-group of WG items to each row; items
// stride over the row, then a tree reduction in local memory combines their partials
// (layer norm: mean first, then the biased variance around it — two passes, as the
// reference does; softmax: max, then the sum of exp(x − max)). Pooling is one work-item per
// output element, looping over the reduced axis (mean: compensated f32 sum / len; max: fmax).
// Launch shape: layernorm/softmax: 1-D, global = rows·WG, local = WG (WG a power of two, a
// build option, default 64). pool: 1-D, global = outer·inner rounded up.
// Limits: a row must fit a size_t; no other.

#ifndef WG
#define WG 64
#endif

// Sum (op 0) or max (op 1) of every item's `v` across the work-group; all items get it.
inline float group_reduce(float v, __local float* red, int op) {
    size_t l = get_local_id(0);
    red[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (size_t s = WG / 2; s > 0; s >>= 1) {
        if (l < s) {
            red[l] = op == 0 ? red[l] + red[l + s] : fmax(red[l], red[l + s]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = red[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

__kernel void K(layernorm)(__global const T* x, __global const T* gamma, __global const T* beta, __global T* y,
                           ulong n, float eps) {
    __local float red[WG];
    size_t row = get_group_id(0);
    size_t l = get_local_id(0);
    __global const T* xr = x + row * n;
    __global T* yr = y + row * n;
    float s = 0.0f;
    for (size_t j = l; j < n; j += WG) {
        s += LD(xr, j);
    }
    float mean = group_reduce(s, red, 0) / (float)n;
    float v = 0.0f;
    for (size_t j = l; j < n; j += WG) {
        float d = LD(xr, j) - mean;
        v += d * d;
    }
    float var = group_reduce(v, red, 0) / (float)n;
    float inv = 1.0f / sqrt(var + eps);
    for (size_t j = l; j < n; j += WG) {
        ST(yr, j, (LD(xr, j) - mean) * inv * LD(gamma, j) + LD(beta, j));
    }
}

__kernel void K(softmax)(__global const T* x, __global T* y, ulong n) {
    __local float red[WG];
    size_t row = get_group_id(0);
    size_t l = get_local_id(0);
    __global const T* xr = x + row * n;
    __global T* yr = y + row * n;
    float m = -INFINITY;
    for (size_t j = l; j < n; j += WG) {
        m = fmax(m, LD(xr, j));
    }
    m = group_reduce(m, red, 1);
    float s = 0.0f;
    for (size_t j = l; j < n; j += WG) {
        s += exp(LD(xr, j) - m);
    }
    s = group_reduce(s, red, 0);
    for (size_t j = l; j < n; j += WG) {
        ST(yr, j, exp(LD(xr, j) - m) / s);
    }
}

// x is [outer, len, inner]; y is [outer, inner]. kind 0 = mean, 1 = max.
__kernel void K(pool)(__global const T* x, __global T* y, ulong outer, ulong len, ulong inner, int kind) {
    size_t g = get_global_id(0);
    if (g >= outer * inner) {
        return;
    }
    size_t o = g / inner;
    size_t i = g % inner;
    __global const T* base = x + o * len * inner + i;
    if (kind == 1) {
        float acc = -INFINITY;
        for (size_t t = 0; t < len; t++) {
            acc = fmax(acc, LD(base, t * inner));
        }
        ST(y, g, acc);
        return;
    }
    // Compensated (Kahan) sum: a mean near zero of many values keeps its relative accuracy.
    float acc = 0.0f;
    float comp = 0.0f;
    for (size_t t = 0; t < len; t++) {
        float v = LD(base, t * inner) - comp;
        float s = acc + v;
        comp = (s - acc) - v;
        acc = s;
    }
    ST(y, g, acc / (float)len);
}
