// conv.cl — 1-D convolution along the sequence with "same" padding and a stride (TextCNN,
// audio subsampling).
//
// Algorithm: direct convolution, one work-item per output element (b, t, co); it sums
// x[b, t·stride + r − (W−1)/2, ci] · w[r, ci, co] over r and ci in f32 (zero outside 0..L),
// adds bias[co] when present, and rounds once on store.
// Launch shape: 1-D, global = B·Lout·Cout rounded up to the work-group size.
// Limits: none beyond size_t indexing; weight reads are strided by Cout (no local tiling —
// these convolutions are small next to the GEMMs around them).

__kernel void K(conv1d)(__global const T* x, __global const T* w, __global const T* bias, __global T* y, ulong b,
                        ulong l, ulong cin, ulong width, ulong cout, ulong stride, int has_bias) {
    size_t lout = (l + stride - 1) / stride;
    size_t g = get_global_id(0);
    if (g >= b * lout * cout) {
        return;
    }
    size_t co = g % cout;
    size_t t = (g / cout) % lout;
    size_t bi = g / (cout * lout);
    long pad = (long)((width - 1) / 2);
    float acc = has_bias ? LD(bias, co) : 0.0f;
    for (size_t r = 0; r < width; r++) {
        long src = (long)(t * stride + r) - pad;
        if (src < 0 || src >= (long)l) {
            continue;
        }
        __global const T* xr = x + (bi * l + (size_t)src) * cin;
        for (size_t ci = 0; ci < cin; ci++) {
            acc = fma(LD(xr, ci), LD(w, (r * cin + ci) * cout + co), acc);
        }
    }
    ST(y, g, acc);
}
