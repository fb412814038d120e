// common.cl — the prelude every omnifuse OpenCL program starts with (the backend prepends it
// to each family's source before clBuildProgram).
//
// Storage types are chosen by one build option per program:
//   -DT_F32   float storage
//   -DT_F16   half storage through vload_half / vstore_half_rte (core OpenCL 1.2: needs no
//             cl_khr_fp16; the device never does half arithmetic)
//   -DT_BF16  bfloat16 as ushort storage, widened by a 16-bit shift, narrowed with
//             round-to-nearest-even (NaN stays a quiet NaN), exactly as half::bf16 does
//   -DT_I8, -DT_I32  integer storage (GEMM, add/mul, dequantize)
//   -DE_SIZE=1|2|4   raw elements of that many bytes (data-movement ops, any dtype)
// Arithmetic on float storage is always f32; every float result is rounded once, on store.
// LD(p, i) reads element i of p as the compute type, ST(p, i, v) stores v into element i.
// K(name) makes the kernel symbol `<name>_<dtype>` (e.g. gemm_tiled_f16).

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)

inline ushort f32_to_bf16(float f) {
    uint u = as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (ushort)((u >> 16) | 0x0040u);
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ushort)(u >> 16);
}

#if defined(T_F32)
#define TNAME f32
typedef float T;
#define LD(p, i) ((float)(p)[(i)])
#define ST(p, i, v) ((p)[(i)] = (v))
#elif defined(T_F16)
#define TNAME f16
#define T half
#define LD(p, i) vload_half((i), (p))
#define ST(p, i, v) vstore_half_rte((v), (i), (p))
#elif defined(T_BF16)
#define TNAME bf16
typedef ushort T;
#define LD(p, i) as_float(((uint)(p)[(i)]) << 16)
#define ST(p, i, v) ((p)[(i)] = f32_to_bf16(v))
#elif defined(T_I8)
#define TNAME i8
typedef char T;
#define LD(p, i) ((int)(p)[(i)])
#elif defined(T_I32)
#define TNAME i32
typedef int T;
#define LD(p, i) ((p)[(i)])
#elif defined(E_SIZE)
#if E_SIZE == 1
#define TNAME x8
typedef uchar T;
#elif E_SIZE == 2
#define TNAME x16
typedef ushort T;
#else
#define TNAME x32
typedef uint T;
#endif
#else
#error "one of T_F32, T_F16, T_BF16, T_I8, T_I32 or E_SIZE must be defined"
#endif

#if defined(T_F32) || defined(T_F16) || defined(T_BF16)
#define IS_FLOAT 1
#endif

#define K(name) CAT(name, TNAME)

// GELU, erf form, in f32, written as 0.5·x·erfc(−x/√2) (= 0.5·x·(1 + erf(x/√2))): for very
// negative x, 1 + erf cancels to a few ulps of 1 while erfc keeps full relative precision.
inline float gelu_f(float x) {
    return 0.5f * x * erfc(-x * 0.70710678118654752f);
}

// Activation codes shared with the host: 0 none, 1 ReLU, 2 GELU.
inline float activate(float x, int act) {
    if (act == 1) {
        return x > 0.0f ? x : 0.0f;
    }
    if (act == 2) {
        return gelu_f(x);
    }
    return x;
}
