// layout.cl — data movement for every dtype: embedding gather, im2col (patch extraction),
// axis permutation, and strided row copies (concat and slice).
//
// Built with -DE_SIZE=1|2|4: elements are moved as raw 1-, 2- or 4-byte words, so one
// program serves every dtype of that width and the copy is bit-exact.
// Algorithm: one work-item per output element; the source index comes from explicit index
// arithmetic (embedding: table row ids[i / d]; im2col: (b, patch row, patch col, dy, dx, c);
// permute: the output index decomposed over the output dims and recombined with the
// permuted input strides; copy_rows: row o, column t of a [rows, width] window).
// Launch shape: 1-D, global = output elements rounded up to the work-group size.
// Limits: none on rank (permute reads its dims and strides from a small ulong table:
// [rank, output dims, input strides of the permuted axes]).
// Embedding ids are validated on the host before the launch (an id outside the table is an
// error there), so the kernel trusts them.

__kernel void K(embedding)(__global const T* table, __global const int* ids, __global T* y, ulong n, ulong d) {
    size_t g = get_global_id(0);
    if (g < n) {
        size_t i = g / d;
        y[g] = table[(size_t)ids[i] * d + g % d];
    }
}

// x [b, h, w, c] → y [b, (h/p)·(w/p), p·p·c]
__kernel void K(im2col)(__global const T* x, __global T* y, ulong n, ulong h, ulong w, ulong c, ulong p) {
    size_t g = get_global_id(0);
    if (g >= n) {
        return;
    }
    size_t pw = w / p;
    size_t ph = h / p;
    size_t row = p * p * c;
    size_t e = g % row;
    size_t patch = g / row;
    size_t ci = e % c;
    size_t dx = (e / c) % p;
    size_t dy = e / (c * p);
    size_t px = patch % pw;
    size_t py = (patch / pw) % ph;
    size_t bi = patch / (pw * ph);
    y[g] = x[((bi * h + py * p + dy) * w + px * p + dx) * c + ci];
}

// meta = [rank, out_dims[rank], in_strides_of_permuted_axes[rank]]
__kernel void K(permute)(__global const T* x, __global T* y, ulong n, __global const ulong* meta) {
    size_t g = get_global_id(0);
    if (g >= n) {
        return;
    }
    size_t rank = meta[0];
    size_t rem = g;
    size_t src = 0;
    for (size_t ax = rank; ax > 0; ax--) {
        size_t d = meta[ax];
        src += (rem % d) * meta[rank + ax];
        rem /= d;
    }
    y[g] = x[src];
}

// y[o·y_pitch + y_off + t] = x[o·x_pitch + x_off + t] for o < rows, t < width
__kernel void K(copy_rows)(__global const T* x, __global T* y, ulong rows, ulong width, ulong x_pitch, ulong x_off,
                           ulong y_pitch, ulong y_off) {
    size_t g = get_global_id(0);
    if (g < rows * width) {
        size_t o = g / width;
        size_t t = g % width;
        y[o * y_pitch + y_off + t] = x[o * x_pitch + x_off + t];
    }
}
