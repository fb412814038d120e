#include "omnifuse_gpu.h"
// gemm_tc.cu — batched f16 / bf16 GEMM on tensor cores (sm_80+) with the fused epilogue
// y = act(scale · (A·B) + bias[col]) + residual, f32 accumulation, one rounding on store.
//
// Algorithm: each block computes a BM × BN tile of one batch's output with WARPS_M × WARPS_N
// warps; a warp owns a (BM/WARPS_M) × (BN/WARPS_N) sub-tile, i.e. MT × NT fragments of
// mma.sync.m16n8k16 (row.col, f32 += f16·f16 or bf16·bf16). K advances in slabs of BK = 32:
// a STAGES-deep cp.async pipeline (16-byte cp.async.cg, zero-filling chunks past the matrix
// edges through src-size 0) copies the A and B slabs of k-tile t + STAGES − 1 while the warps
// multiply k-tile t out of shared memory. One __syncthreads per k-tile: after waiting for
// tile t's group, the barrier also proves every warp is done with the stage that the next
// copy overwrites (the one read at t − 1).
// Shared-memory layouts (per stage, 16-byte chunks XOR-swizzled so that the eight row
// addresses of every ldmatrix phase, and every cp.async of a warp, hit distinct banks):
//  - K-major operand (A when !TRANS_A, B when TRANS_B): [rows][BK], 64-byte rows, chunk c of
//    row r stored at chunk c ^ ((r >> 1) & 3); fragments come from ldmatrix.x4 (no .trans).
//  - MN-major operand (A when TRANS_A, stored [K, M]; B when !TRANS_B, stored [K, N]):
//    [BK][rows], rows of BM or BN elements (≥ 64, so ≥ 8 chunks), chunk c of k-row r stored
//    at c ^ (r & 7); fragments come from ldmatrix.x4.trans.
// Epilogue: straight from the accumulators (each lane holds pairs of adjacent columns), with
// paired 32-bit loads/stores of bias, residual and output when N is even, scalar otherwise.
// A batch b reads A + b·a_stride and B + b·b_stride (b_stride = 0: a rank-2 B shared by
// every batch); the output and the residual are dense [batch, M, N].
//
// Launch shape: grid (ceil(N/BN), ceil(M/BM), batch), block WARPS_M·WARPS_N·32 threads,
// dynamic shared memory STAGES·(BM + BN)·BK·2 bytes (64 KiB at 128×128×32, 4 stages).
// Defines: BF16 (0: f16 storage, kernel gemm_tc_f16; 1: bf16, gemm_tc_bf16), TRANS_A,
// TRANS_B (0/1), BM, BN, WARPS_M, WARPS_N, STAGES, MIN_BLOCKS (launch bounds).
// Limits (checked by the host, which otherwise takes the generic GEMM): every 16-byte chunk
// of a row of the stored matrices must be whole and aligned, so K % 8 == 0 for a K-major
// operand, M % 8 == 0 for a transposed A, N % 8 == 0 for a row-major [K, N] B, and all
// pointers 16-byte aligned; M, N, K < 2^31; batch ≤ 65535; sm_80 or newer. HIP and older
// architectures get a trapping body (the host never launches them there).

#ifndef BF16
#define BF16 0
#endif
#ifndef TRANS_A
#define TRANS_A 0
#endif
#ifndef TRANS_B
#define TRANS_B 0
#endif
#ifndef BM
#define BM 128
#endif
#ifndef BN
#define BN 128
#endif
#ifndef WARPS_M
#define WARPS_M 2
#endif
#ifndef WARPS_N
#define WARPS_N 4
#endif
#ifndef STAGES
#define STAGES 4
#endif
#ifndef MIN_BLOCKS
#define MIN_BLOCKS 2
#endif

#define BK 32
#define THREADS (WARPS_M * WARPS_N * 32)
#define WTM (BM / WARPS_M)
#define WTN (BN / WARPS_N)
#define MT (WTM / 16)
#define NT (WTN / 8)
#define A_BYTES (BM * BK * 2)
#define B_BYTES (BN * BK * 2)
#define STAGE_BYTES (A_BYTES + B_BYTES)

#if BF16
typedef of_bf16 T;
#define GEMM_TC_NAME gemm_tc_bf16
#define MMA_TYPE "bf16"
#else
typedef of_f16 T;
#define GEMM_TC_NAME gemm_tc_f16
#define MMA_TYPE "f16"
#endif

#if (BM % (WARPS_M * 16)) != 0 || (BN % (WARPS_N * 16)) != 0 || BM < 64 || BN < 64
#error "gemm_tc: BM/WARPS_M and BN/WARPS_N must be multiples of 16, BM and BN at least 64"
#endif
#if ((BM * BK / 8) % THREADS) != 0 || ((BN * BK / 8) % THREADS) != 0
#error "gemm_tc: the chunks of a slab must divide evenly over the threads"
#endif

#if defined(OF_CUDA) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define GEMM_TC_ENABLED 1
#endif

#if defined(GEMM_TC_ENABLED)
OF_DEV unsigned tc_smem_addr(const void* p) {
    unsigned a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

// 16-byte global → shared copy; `bytes` 0 zero-fills the destination without reading.
OF_DEV void tc_cp16(unsigned dst, const void* src, unsigned bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
OF_DEV void tc_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> OF_DEV void tc_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

OF_DEV void tc_ldm_x4(unsigned (&r)[4], unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
OF_DEV void tc_ldm_x4_t(unsigned (&r)[4], unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

OF_DEV void tc_mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32." MMA_TYPE "." MMA_TYPE ".f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Byte offset of 16-byte chunk `c` of row `r` in a K-major slab ([rows][BK], 4 chunks a row).
OF_DEV unsigned kmaj_off(int r, int c) { return (unsigned)(r * (BK * 2) + ((c ^ ((r >> 1) & 3)) << 4)); }
// Byte offset of chunk `c` of k-row `r` in an MN-major slab ([BK][W], W / 8 chunks a row).
template <int W> OF_DEV unsigned mnmaj_off(int r, int c) { return (unsigned)(r * (W * 2) + ((c ^ (r & 7)) << 4)); }

// Copy one BK slab of an operand into shared memory at `dst`.
// K-major: the operand is stored [rows, K] (row length K): rows r0.. of the slab, columns k0..
// MN-major: stored [K, rows] (row length `rows`): k-rows k0.., columns r0..
template <int W, bool KMAJ>
OF_DEV void load_slab(unsigned dst, const T* src, int rows, int K, int r0, int k0, int tid) {
    constexpr int CHUNKS = W * BK / 8;
#pragma unroll
    for (int i = 0; i < CHUNKS / THREADS; i++) {
        int id = tid + i * THREADS;
        if (KMAJ) {
            int r = id >> 2, c = id & 3;
            int gr = r0 + r, gk = k0 + c * 8;
            bool ok = gr < rows && gk < K;
            const T* p = ok ? src + ((long long)gr * K + gk) : src;
            tc_cp16(dst + kmaj_off(r, c), p, ok ? 16u : 0u);
        } else {
            int r = id / (W / 8), c = id % (W / 8);
            int gk = k0 + r, gr = r0 + c * 8;
            bool ok = gk < K && gr < rows;
            const T* p = ok ? src + ((long long)gk * rows + gr) : src;
            tc_cp16(dst + mnmaj_off<W>(r, c), p, ok ? 16u : 0u);
        }
    }
}

OF_DEV unsigned pack2(float lo, float hi) {
#if BF16
    return (unsigned)of_f32_to_bf16(lo).bits | ((unsigned)of_f32_to_bf16(hi).bits << 16);
#else
    return (unsigned)of_f32_to_f16(lo) | ((unsigned)of_f32_to_f16(hi) << 16);
#endif
}
OF_DEV float lo16(unsigned v) {
#if BF16
    return __uint_as_float(v << 16);
#else
    return of_f16_to_f32((of_f16)(v & 0xffffu));
#endif
}
OF_DEV float hi16(unsigned v) {
#if BF16
    return __uint_as_float(v & 0xffff0000u);
#else
    return of_f16_to_f32((of_f16)(v >> 16));
#endif
}
#endif // GEMM_TC_ENABLED

extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS)
    GEMM_TC_NAME(const T* __restrict__ a_all, const T* __restrict__ b_all, const T* __restrict__ bias,
                 const T* __restrict__ res, T* __restrict__ y, int M, int N, int K, long long a_stride,
                 long long b_stride, float scale, int has_bias, int act, int has_res) {
#if defined(GEMM_TC_ENABLED)
    extern __shared__ __align__(128) unsigned char smem[];
    const unsigned sbase = tc_smem_addr(smem);
    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int wm0 = (warp / WARPS_N) * WTM;
    const int wn0 = (warp % WARPS_N) * WTN;
    const long long batch = blockIdx.z;
    const T* a = a_all + batch * a_stride;
    const T* b = b_all + batch * b_stride;
    const int m0 = blockIdx.y * BM;
    const int n0 = blockIdx.x * BN;
    const int ktiles = (K + BK - 1) / BK;

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    // Prologue: the first STAGES − 1 slabs, one commit group each (empty past the end, so the
    // group count stays uniform for wait_group).
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < ktiles) {
            unsigned st = sbase + s * STAGE_BYTES;
            load_slab<BM, !TRANS_A>(st, a, M, K, m0, s * BK, tid);
            load_slab<BN, (bool)TRANS_B>(st + A_BYTES, b, N, K, n0, s * BK, tid);
        }
        tc_commit();
    }

    for (int kt = 0; kt < ktiles; kt++) {
        tc_wait<STAGES - 2>();
        __syncthreads();
        {
            int nk = kt + STAGES - 1;
            if (nk < ktiles) {
                unsigned st = sbase + (nk % STAGES) * STAGE_BYTES;
                load_slab<BM, !TRANS_A>(st, a, M, K, m0, nk * BK, tid);
                load_slab<BN, (bool)TRANS_B>(st + A_BYTES, b, N, K, n0, nk * BK, tid);
            }
            tc_commit();
        }
        const unsigned sa = sbase + (kt % STAGES) * STAGE_BYTES;
        const unsigned sb = sa + A_BYTES;
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            unsigned af[MT][4];
            unsigned bf[NT][2];
#pragma unroll
            for (int i = 0; i < MT; i++) {
#if TRANS_A
                // [K, M] slab: matrix q = lane / 8 covers m + (q & 1)·8, k + (q >> 1)·8.
                int q = lane >> 3;
                int kr = kk * 16 + (q >> 1) * 8 + (lane & 7);
                int c = (wm0 + i * 16 + (q & 1) * 8) >> 3;
                tc_ldm_x4_t(af[i], sa + mnmaj_off<BM>(kr, c));
#else
                // [M, K] slab: matrix q covers rows + (q & 1)·8, k + (q >> 1)·8.
                int r = wm0 + i * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                int c = kk * 2 + (lane >> 4);
                tc_ldm_x4(af[i], sa + kmaj_off(r, c));
#endif
            }
#pragma unroll
            for (int j = 0; j < NT / 2; j++) {
                unsigned t[4];
                int q = lane >> 3;
#if TRANS_B
                // [N, K] slab: matrix q covers n + (q >> 1)·8, k + (q & 1)·8.
                int r = wn0 + j * 16 + (q >> 1) * 8 + (lane & 7);
                int c = kk * 2 + (q & 1);
                tc_ldm_x4(t, sb + kmaj_off(r, c));
#else
                // [K, N] slab: matrix q covers k + (q & 1)·8, n + (q >> 1)·8.
                int kr = kk * 16 + (q & 1) * 8 + (lane & 7);
                int c = (wn0 + j * 16 + (q >> 1) * 8) >> 3;
                tc_ldm_x4_t(t, sb + mnmaj_off<BN>(kr, c));
#endif
                bf[2 * j][0] = t[0];
                bf[2 * j][1] = t[1];
                bf[2 * j + 1][0] = t[2];
                bf[2 * j + 1][1] = t[3];
            }
#pragma unroll
            for (int i = 0; i < MT; i++)
#pragma unroll
                for (int j = 0; j < NT; j++) tc_mma(acc[i][j], af[i], bf[j][0], bf[j][1]);
        }
    }
    // No cp.async is left in flight that writes anything read later: the trailing groups are
    // empty, and shared memory is not reused by the epilogue.

    const bool pair = (N & 1) == 0;
    T* yb = y + batch * (long long)M * N;
    const T* rb = res + batch * (long long)M * N;
#pragma unroll
    for (int i = 0; i < MT; i++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int row = m0 + wm0 + i * 16 + (lane >> 2) + h * 8;
            if (row >= M) continue;
#pragma unroll
            for (int j = 0; j < NT; j++) {
                int col = n0 + wn0 + j * 8 + (lane & 3) * 2;
                if (col >= N) continue;
                long long o = (long long)row * N + col;
                float v0 = acc[i][j][2 * h] * scale;
                float v1 = acc[i][j][2 * h + 1] * scale;
                if (pair) {
                    // N even: col even, col + 1 < N, and the pair is 4-byte aligned.
                    if (has_bias) {
                        unsigned bv = *(const unsigned*)(bias + col);
                        v0 += lo16(bv);
                        v1 += hi16(bv);
                    }
                    v0 = of_act(v0, act);
                    v1 = of_act(v1, act);
                    if (has_res) {
                        unsigned rv = *(const unsigned*)(rb + o);
                        v0 += lo16(rv);
                        v1 += hi16(rv);
                    }
                    *(unsigned*)(yb + o) = pack2(v0, v1);
                } else {
                    if (has_bias) v0 += of_load_f32<T>(bias, col);
                    v0 = of_act(v0, act);
                    if (has_res) v0 += of_load_f32<T>(rb, o);
                    of_store_f32<T>(yb, o, v0);
                    if (col + 1 < N) {
                        if (has_bias) v1 += of_load_f32<T>(bias, col + 1);
                        v1 = of_act(v1, act);
                        if (has_res) v1 += of_load_f32<T>(rb, o + 1);
                        of_store_f32<T>(yb, o + 1, v1);
                    }
                }
            }
        }
    }
#else
    __builtin_trap();
#endif
}
