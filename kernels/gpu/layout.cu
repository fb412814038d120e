#include "omnifuse_gpu.h"
// layout.cu — data movement for every dtype: embedding gather, im2col (patch extraction), axis
// permutation, and strided row copies (concat and slice).
//
// Elements are moved as raw 1-, 2- or 4-byte words (symbol suffix x8, x16, x32), so one kernel
// serves every dtype of that width and the copy is bit-exact.
// Algorithm (the one of kernels/opencl/layout.cl): one thread per output element in a
// grid-stride loop; the source index comes from explicit index arithmetic (embedding: table row
// ids[i / d]; im2col: (b, patch row, patch col, dy, dx, c); permute: the output index
// decomposed over the output dims and recombined with the permuted input strides; copy_rows:
// row o, column t of a [rows, width] window). Index arithmetic runs on 32-bit words when every
// index fits (most tensors), else on 64-bit ones.
//
// Symbols (each for x8, x16, x32):
//   embedding_<w>(table, ids, y, n, d)
//   im2col_<w>(x, y, n, h, w, c, p)                       x [b, h, w, c] → y [b, (h/p)·(w/p), p·p·c]
//   permute_<w>(x, y, n, rank, d0..d7, s0..s7)            output dims d, input strides s of the
//                                                         permuted axes (axes ≥ rank unused)
//   copy_rows_<w>(x, y, rows, width, x_pitch, x_off, y_pitch, y_off)
//                                                         y[o·y_pitch + y_off + t] = x[o·x_pitch + x_off + t]
// Launch shape: 1-D, block LAYOUT_BLOCK threads, any grid ≥ 1 (the host uses
// ceil(elements / LAYOUT_BLOCK) capped at 2²⁰ blocks).
// Limits: permute takes rank ≤ 8 (the host merges axes that stay adjacent and drops unit axes
// first). Embedding ids are validated on the host before the launch (an id outside the table is
// an error there), so the kernel trusts them.

#ifndef LAYOUT_BLOCK
#define LAYOUT_BLOCK 256
#endif
#define PERM_MAX 8

#define LAYOUT_LOOP(g, n)                                                                                          \
    for (of_u64 g = (of_u64)blockIdx.x * blockDim.x + threadIdx.x; g < (n); g += (of_u64)gridDim.x * blockDim.x)

template <typename W> OF_DEV void embedding(const W* table, const int* ids, W* y, of_u64 n, of_u64 d) {
    LAYOUT_LOOP(g, n) {
        of_u64 i = g / d;
        y[g] = table[(of_u64)ids[i] * d + g % d];
    }
}

template <typename I, typename W>
OF_DEV void im2col(const W* x, W* y, of_u64 n, I h, I w, I c, I p) {
    const I pw = w / p;
    const I ph = h / p;
    const I row = p * p * c;
    LAYOUT_LOOP(g64, n) {
        const I g = (I)g64;
        const I e = g % row;
        const I patch = g / row;
        const I ci = e % c;
        const I dx = (e / c) % p;
        const I dy = e / (c * p);
        const I px = patch % pw;
        const I py = (patch / pw) % ph;
        const I bi = patch / (pw * ph);
        y[g] = x[((bi * h + py * p + dy) * w + px * p + dx) * c + ci];
    }
}

template <typename I, typename W>
OF_DEV void permute(const W* x, W* y, of_u64 n, int rank, const of_u64 (&d)[PERM_MAX], const of_u64 (&s)[PERM_MAX]) {
    LAYOUT_LOOP(g, n) {
        I rem = (I)g;
        I src = 0;
#pragma unroll
        for (int ax = PERM_MAX - 1; ax >= 0; ax--) {
            if (ax < rank) {
                const I dd = (I)d[ax];
                src += (rem % dd) * (I)s[ax];
                rem /= dd;
            }
        }
        y[g] = x[src];
    }
}

template <typename W>
OF_DEV void copy_rows(const W* x, W* y, of_u64 rows, of_u64 width, of_u64 x_pitch, of_u64 x_off, of_u64 y_pitch,
                      of_u64 y_off) {
    LAYOUT_LOOP(g, rows * width) {
        of_u64 o = g / width;
        of_u64 t = g % width;
        y[o * y_pitch + y_off + t] = x[o * x_pitch + x_off + t];
    }
}

#define LAYOUT(WN, W)                                                                                              \
    extern "C" __global__ void __launch_bounds__(LAYOUT_BLOCK)                                                     \
        embedding_##WN(const W* table, const int* ids, W* y, of_u64 n, of_u64 d) {                                 \
        embedding<W>(table, ids, y, n, d);                                                                         \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(LAYOUT_BLOCK)                                                     \
        im2col_##WN(const W* x, W* y, of_u64 n, of_u64 h, of_u64 w, of_u64 c, of_u64 p) {                          \
        if (n <= 0xffffffffull) {                                                                                  \
            im2col<unsigned, W>(x, y, n, (unsigned)h, (unsigned)w, (unsigned)c, (unsigned)p);                      \
        } else {                                                                                                   \
            im2col<of_u64, W>(x, y, n, h, w, c, p);                                                                \
        }                                                                                                          \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(LAYOUT_BLOCK) permute_##WN(                                       \
        const W* x, W* y, of_u64 n, int rank, of_u64 d0, of_u64 d1, of_u64 d2, of_u64 d3, of_u64 d4, of_u64 d5,   \
        of_u64 d6, of_u64 d7, of_u64 s0, of_u64 s1, of_u64 s2, of_u64 s3, of_u64 s4, of_u64 s5, of_u64 s6,        \
        of_u64 s7) {                                                                                               \
        const of_u64 d[PERM_MAX] = {d0, d1, d2, d3, d4, d5, d6, d7};                                               \
        const of_u64 s[PERM_MAX] = {s0, s1, s2, s3, s4, s5, s6, s7};                                               \
        if (n <= 0xffffffffull) {                                                                                  \
            permute<unsigned, W>(x, y, n, rank, d, s);                                                             \
        } else {                                                                                                   \
            permute<of_u64, W>(x, y, n, rank, d, s);                                                               \
        }                                                                                                          \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(LAYOUT_BLOCK)                                                     \
        copy_rows_##WN(const W* x, W* y, of_u64 rows, of_u64 width, of_u64 x_pitch, of_u64 x_off, of_u64 y_pitch,  \
                       of_u64 y_off) {                                                                             \
        copy_rows<W>(x, y, rows, width, x_pitch, x_off, y_pitch, y_off);                                           \
    }

LAYOUT(x8, unsigned char)
LAYOUT(x16, unsigned short)
LAYOUT(x32, unsigned int)
