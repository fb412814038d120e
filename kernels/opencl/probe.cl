// probe.cl — the peak f32 throughput probe behind the OpenCL device's "est. peak f32":
// independent FMA chains with no memory traffic.
//
// Algorithm: each work-item runs 4 independent float8 chains x = fma(x, a, b) for `iters`
// steps (8 lanes × 4 chains × 2 flops per step), then stores one float so the chains are not
// dead code. a is just below 1 and b small, so values stay finite.
// Launch shape: 1-D, global = a multiple of the work-group size, enough items to fill every
// compute unit; the host times one launch and counts global · iters · 64 flops.
// Limits: a probe, not a benchmark — it ignores memory, so real kernels reach a fraction.

__kernel void K(probe_fma)(__global float* out, int iters, float a, float b) {
    float s = (float)get_global_id(0) * 1e-7f;
    float8 x0 = (float8)(s);
    float8 x1 = x0 + 1.0f;
    float8 x2 = x0 + 2.0f;
    float8 x3 = x0 + 3.0f;
    for (int i = 0; i < iters; i++) {
        x0 = fma(x0, (float8)(a), (float8)(b));
        x1 = fma(x1, (float8)(a), (float8)(b));
        x2 = fma(x2, (float8)(a), (float8)(b));
        x3 = fma(x3, (float8)(a), (float8)(b));
    }
    float8 t = x0 + x1 + x2 + x3;
    out[get_global_id(0)] = t.s0 + t.s1 + t.s2 + t.s3 + t.s4 + t.s5 + t.s6 + t.s7;
}
