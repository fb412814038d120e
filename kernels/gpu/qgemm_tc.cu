#include "omnifuse_gpu.h"
// qgemm_tc.cu — INT8 GEMM on tensor cores (sm_80+): i8 × i8 → i32 with mma.sync.m16n8k32
// (row.col, s32 += s8·s8, wrapping), and the dequantising epilogue fused:
//   v = act(acc · (a_scale[row or 0] · scale) · b_scale[col] + bias[col]) + residual
// stored as f32 (OUT_MODE 0, kernel qgemm_tc_f32) or requantised to i8 (OUT_MODE 1,
// qgemm_tc_i8: q = clamp(round(v / requant), −127, 127), half away from zero, NaN → 0);
// OUT_MODE 2 (qgemm_tc_i32) stores the raw i32 sums (the plain i8 GEMM, no epilogue).
//
// Algorithm: as gemm_tc.cu, with both operands K-major: A i8 [M, K] and B i8 [N, K] (the
// Linear weight layout), so every fragment comes from ldmatrix.x4 without .trans (an 8×8
// b16 matrix is 8 rows of 16 bytes = 16 i8 values; the lane layout of m16n8k32's s8 A and B
// fragments is the f16 m16n8k16 one with twice the elements per register). Each block
// computes a BM × BN output tile with WARPS_M × WARPS_N warps (MT × NT m16n8 fragments a
// warp); K advances in slabs of BK = 64 bytes through a STAGES-deep cp.async pipeline into
// XOR-swizzled shared memory (chunk c of row r at c ^ ((r >> 1) & 3): conflict-free for the
// eight row addresses of an ldmatrix phase and for the cp.async stores), zero-filling past
// the edges with src-size 0. One __syncthreads per k-tile. Epilogue straight from the
// accumulators, two adjacent columns per lane (paired stores when N is even).
// Batches: block z reads A + z·a_stride, B + z·b_stride and writes rows z·M.. of y; the
// row index of a per-row a_scale is z·M + row (a_scale_rows 0: one scale for all).
//
// qgemm_quantize_{f32,f16,bf16}: quantise float A per row on the fly, exactly as the op
// defines (in f32): a_scale[r] = max|A[r, ·]| / 127 (1 when the max is 0 or not finite; NaN
// values are ignored by the max), q = clamp(round(A / a_scale[r]), −127, 127), NaN → 0.
// One block of QROW_THREADS threads per row, four values per thread and step.
//
// Launch shapes: GEMM grid (ceil(N/BN), ceil(M/BM), batch), block WARPS_M·WARPS_N·32,
// dynamic shared memory STAGES·(BM + BN)·64 bytes (64 KiB at 128×128, 4 stages); quantize
// grid (rows), block QROW_THREADS, no shared memory beyond 32 floats.
// Defines: OUT_MODE (0/1/2), BM, BN, WARPS_M, WARPS_N, STAGES, MIN_BLOCKS.
// Limits (checked by the host): K % 16 == 0 (whole, aligned 16-byte chunks of every row),
// 16-byte aligned pointers, M, N, K < 2^31, batch ≤ 65535, sm_80+; quantize needs K % 4 == 0.
// HIP and older architectures get a trapping body (the host never launches them there).

#ifndef OUT_MODE
#define OUT_MODE 0
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
#define QROW_THREADS 128

#define BK 64
#define THREADS (WARPS_M * WARPS_N * 32)
#define WTM (BM / WARPS_M)
#define WTN (BN / WARPS_N)
#define MT (WTM / 16)
#define NT (WTN / 8)
#define A_BYTES (BM * BK)
#define B_BYTES (BN * BK)
#define STAGE_BYTES (A_BYTES + B_BYTES)

#if OUT_MODE == 0
typedef float Y_T;
#define QGEMM_TC_NAME qgemm_tc_f32
#elif OUT_MODE == 1
typedef of_i8 Y_T;
#define QGEMM_TC_NAME qgemm_tc_i8
#else
typedef int Y_T;
#define QGEMM_TC_NAME qgemm_tc_i32
#endif

#if (BM % (WARPS_M * 16)) != 0 || (BN % (WARPS_N * 16)) != 0
#error "qgemm_tc: BM/WARPS_M and BN/WARPS_N must be multiples of 16"
#endif
#if ((BM * BK / 16) % THREADS) != 0 || ((BN * BK / 16) % THREADS) != 0
#error "qgemm_tc: the chunks of a slab must divide evenly over the threads"
#endif

#if defined(OF_CUDA) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define QGEMM_TC_ENABLED 1
#endif

#if defined(QGEMM_TC_ENABLED)
OF_DEV unsigned qtc_smem_addr(const void* p) {
    unsigned a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

// 16-byte global → shared copy; `bytes` 0 zero-fills the destination without reading.
OF_DEV void qtc_cp16(unsigned dst, const void* src, unsigned bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
OF_DEV void qtc_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> OF_DEV void qtc_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

OF_DEV void qtc_ldm_x4(unsigned (&r)[4], unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

OF_DEV void qtc_mma(int (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Byte offset of 16-byte chunk `c` of row `r` in a slab ([rows][BK bytes], 4 chunks a row).
OF_DEV unsigned qkoff(int r, int c) { return (unsigned)(r * BK + ((c ^ ((r >> 1) & 3)) << 4)); }

// Copy one BK slab of a K-major i8 operand stored [rows, K]: rows r0.., columns k0...
template <int W> OF_DEV void qload_slab(unsigned dst, const of_i8* src, int rows, int K, int r0, int k0, int tid) {
    constexpr int CHUNKS = W * BK / 16;
#pragma unroll
    for (int i = 0; i < CHUNKS / THREADS; i++) {
        int id = tid + i * THREADS;
        int r = id >> 2, c = id & 3;
        int gr = r0 + r, gk = k0 + c * 16;
        bool ok = gr < rows && gk < K;
        const of_i8* p = ok ? src + ((long long)gr * K + gk) : src;
        qtc_cp16(dst + qkoff(r, c), p, ok ? 16u : 0u);
    }
}

#if OUT_MODE != 2
OF_DEV float qtc_epi(int acc, float sa, float sb, const float* bias, int col, int act, float rv) {
    float v = (float)acc * sa * sb;
    if (bias) v += bias[col];
    v = of_act(v, act);
    return v + rv;
}
#endif
#if OUT_MODE == 1
OF_DEV int qtc_requant(float v, float step) {
    float q = roundf(v / step);
    if (q != q) return 0;
    return (int)fminf(fmaxf(q, -127.0f), 127.0f);
}
#endif
#endif // QGEMM_TC_ENABLED

extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS)
    QGEMM_TC_NAME(const of_i8* __restrict__ a_all, const of_i8* __restrict__ b_all,
                  const float* __restrict__ a_scale, const float* __restrict__ b_scale, long long a_scale_rows,
                  float requant, const float* __restrict__ bias, const float* __restrict__ res, Y_T* __restrict__ y,
                  int M, int N, int K, long long a_stride, long long b_stride, float scale, int has_bias, int act,
                  int has_res) {
#if defined(QGEMM_TC_ENABLED)
    extern __shared__ __align__(128) unsigned char smem[];
    const unsigned sbase = qtc_smem_addr(smem);
    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int wm0 = (warp / WARPS_N) * WTM;
    const int wn0 = (warp % WARPS_N) * WTN;
    const long long batch = blockIdx.z;
    const of_i8* a = a_all + batch * a_stride;
    const of_i8* b = b_all + batch * b_stride;
    const int m0 = blockIdx.y * BM;
    const int n0 = blockIdx.x * BN;
    const int ktiles = (K + BK - 1) / BK;

    int acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0;

#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < ktiles) {
            unsigned st = sbase + s * STAGE_BYTES;
            qload_slab<BM>(st, a, M, K, m0, s * BK, tid);
            qload_slab<BN>(st + A_BYTES, b, N, K, n0, s * BK, tid);
        }
        qtc_commit();
    }

    for (int kt = 0; kt < ktiles; kt++) {
        qtc_wait<STAGES - 2>();
        __syncthreads();
        {
            int nk = kt + STAGES - 1;
            if (nk < ktiles) {
                unsigned st = sbase + (nk % STAGES) * STAGE_BYTES;
                qload_slab<BM>(st, a, M, K, m0, nk * BK, tid);
                qload_slab<BN>(st + A_BYTES, b, N, K, n0, nk * BK, tid);
            }
            qtc_commit();
        }
        const unsigned sa = sbase + (kt % STAGES) * STAGE_BYTES;
        const unsigned sb = sa + A_BYTES;
#pragma unroll
        for (int kk = 0; kk < BK / 32; kk++) {
            unsigned af[MT][4];
            unsigned bf[NT][2];
#pragma unroll
            for (int i = 0; i < MT; i++) {
                // Matrix q = lane / 8 covers rows + (q & 1)·8, bytes k + (q >> 1)·16.
                int r = wm0 + i * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                int c = kk * 2 + (lane >> 4);
                qtc_ldm_x4(af[i], sa + qkoff(r, c));
            }
#pragma unroll
            for (int j = 0; j < NT / 2; j++) {
                // Matrix q covers n + (q >> 1)·8, bytes k + (q & 1)·16.
                unsigned t[4];
                int q = lane >> 3;
                int r = wn0 + j * 16 + (q >> 1) * 8 + (lane & 7);
                int c = kk * 2 + (q & 1);
                qtc_ldm_x4(t, sb + qkoff(r, c));
                bf[2 * j][0] = t[0];
                bf[2 * j][1] = t[1];
                bf[2 * j + 1][0] = t[2];
                bf[2 * j + 1][1] = t[3];
            }
#pragma unroll
            for (int i = 0; i < MT; i++)
#pragma unroll
                for (int j = 0; j < NT; j++) qtc_mma(acc[i][j], af[i], bf[j][0], bf[j][1]);
        }
    }

    const bool pair = (N & 1) == 0;
    Y_T* yb = y + batch * (long long)M * N;
#if OUT_MODE != 2
    const float* rb = res + batch * (long long)M * N;
    const float* bp = has_bias ? bias : nullptr;
#endif
#pragma unroll
    for (int i = 0; i < MT; i++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int row = m0 + wm0 + i * 16 + (lane >> 2) + h * 8;
            if (row >= M) continue;
#if OUT_MODE != 2
            float sa = a_scale[a_scale_rows ? batch * M + row : 0] * scale;
#endif
#pragma unroll
            for (int j = 0; j < NT; j++) {
                int col = n0 + wn0 + j * 8 + (lane & 3) * 2;
                if (col >= N) continue;
                long long o = (long long)row * N + col;
                int a0 = acc[i][j][2 * h], a1 = acc[i][j][2 * h + 1];
#if OUT_MODE == 2
                if (pair) {
                    *(int2*)(yb + o) = make_int2(a0, a1);
                } else {
                    yb[o] = a0;
                    if (col + 1 < N) yb[o + 1] = a1;
                }
#else
                if (pair) {
                    // N even: col + 1 < N and the pair is aligned to its size.
                    float2 sb = *(const float2*)(b_scale + col);
                    float2 rv = has_res ? *(const float2*)(rb + o) : make_float2(0.0f, 0.0f);
                    float v0 = qtc_epi(a0, sa, sb.x, bp, col, act, rv.x);
                    float v1 = qtc_epi(a1, sa, sb.y, bp, col + 1, act, rv.y);
#if OUT_MODE == 1
                    unsigned short pk = (unsigned short)((qtc_requant(v0, requant) & 0xff) |
                                                         ((qtc_requant(v1, requant) & 0xff) << 8));
                    *(unsigned short*)(yb + o) = pk;
#else
                    *(float2*)(yb + o) = make_float2(v0, v1);
#endif
                } else {
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        if (col + e >= N) break;
                        float v = qtc_epi(e ? a1 : a0, sa, b_scale[col + e], bp, col + e, act,
                                          has_res ? rb[o + e] : 0.0f);
#if OUT_MODE == 1
                        yb[o + e] = (of_i8)qtc_requant(v, requant);
#else
                        yb[o + e] = v;
#endif
                    }
                }
#endif
            }
        }
    }
#else
    __builtin_trap();
#endif
}

// Per-row quantisation of float A into i8 with one f32 step per row (see the header).
template <typename T>
OF_DEV void qgemm_quantize_row(const T* __restrict__ x, of_i8* __restrict__ q, float* __restrict__ scales, int K) {
    __shared__ float part[32];
    const long long r = blockIdx.x;
    const T* xr = x + r * K;
    float amax = 0.0f;
    for (int p = threadIdx.x * 4; p < K; p += QROW_THREADS * 4) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float v = fabsf(of_load_f32<T>(xr, p + e));
            amax = v > amax ? v : amax; // a NaN never compares greater: ignored
        }
    }
    amax = of_warp_max(amax);
    const int lane = threadIdx.x % OF_WARP, w = threadIdx.x / OF_WARP;
    if (lane == 0) part[w] = amax;
    __syncthreads();
    if (threadIdx.x == 0) {
        float m = 0.0f;
        for (int i = 0; i < QROW_THREADS / OF_WARP; i++) m = part[i] > m ? part[i] : m;
        float s = (m > 0.0f && m <= 3.402823466e38f) ? m / 127.0f : 1.0f;
        part[0] = s;
        scales[r] = s;
    }
    __syncthreads();
    const float s = part[0];
    for (int p = threadIdx.x * 4; p < K; p += QROW_THREADS * 4) {
        unsigned pk = 0;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float v = roundf(of_load_f32<T>(xr, p + e) / s);
            int qi = v != v ? 0 : (int)fminf(fmaxf(v, -127.0f), 127.0f);
            pk |= ((unsigned)qi & 0xffu) << (8 * e);
        }
        *(unsigned*)(q + r * K + p) = pk;
    }
}

extern "C" __global__ void __launch_bounds__(QROW_THREADS)
    qgemm_quantize_f32(const float* __restrict__ x, of_i8* __restrict__ q, float* __restrict__ scales, int K) {
    qgemm_quantize_row<float>(x, q, scales, K);
}
extern "C" __global__ void __launch_bounds__(QROW_THREADS)
    qgemm_quantize_f16(const of_f16* __restrict__ x, of_i8* __restrict__ q, float* __restrict__ scales, int K) {
    qgemm_quantize_row<of_f16>(x, q, scales, K);
}
extern "C" __global__ void __launch_bounds__(QROW_THREADS)
    qgemm_quantize_bf16(const of_bf16* __restrict__ x, of_i8* __restrict__ q, float* __restrict__ scales, int K) {
    qgemm_quantize_row<of_bf16>(x, q, scales, K);
}
