// omnifuse_gpu_emu.h — host stand-in for kernels/include/omnifuse_gpu.h: a kernels/gpu source
// compiled with the system C++ compiler (c++ -std=c++20 -O1 -shared -fPIC) runs its kernels on
// the CPU, so the launch layer and the general-path kernels can be checked without a GPU.
//
// The model. One module (one compiled source variant, one shared object) runs one launch at a
// time. A launch walks the grid block by block, in x, then y, then z order. The threads of a
// block are real threads, taken from a pool the module keeps for its life, so __syncthreads and
// the warp-level exchanges are real barriers: threads of a block interleave like they may on a
// GPU, and a missing barrier shows up as a race rather than being hidden by sequential order.
//  - __syncthreads: a barrier over the block; a thread that returns from the kernel leaves it
//    (and its warp's barrier), so blocks whose threads exit early keep going, as on sm_70+.
//    On leaving each one, one thread of the block (pseudo-random) sleeps 50 µs while the rest
//    run ahead, so a missing barrier before shared memory is reused shows up as a race.
//  - Warps are 32 consecutive linear thread ids. __syncwarp is a barrier over the warp; the
//    shuffles write the lane's value to a per-thread slot, meet at the warp barrier, read the
//    source lane's slot and meet again.
//  - Static __shared__ variables are function-local statics (one block runs at a time per
//    module). The dynamic area (extern __shared__) is one buffer per module, filled with 0xFF
//    bytes before every block, so a read of shared memory no thread wrote shows up as NaN / −1;
//    the 4 KiB after the launch's size are guard bytes, checked after every block, so a kernel
//    that writes past the dynamic shared memory its launch asked for fails the launch.
//    The build rewrites `extern __shared__` to `extern`, and the generated wrapper defines each
//    such array at namespace scope as an alias of `emu_dynamic_shared`.
//  - blockIdx, blockDim and gridDim are module globals; threadIdx is thread-local.
//  - f16 conversions use _Float16 (round to nearest even, as PTX cvt.rn does); everything else
//    is the host's IEEE float arithmetic. Inline PTX (asm) is not emulated: the tensor-core
//    sources are out of scope, and the emulated device reports no tensor cores.
// Everything here has internal linkage or hidden visibility, so two modules loaded into one
// process never share state (the build passes -fvisibility=hidden -fno-gnu-unique).
#pragma once

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <math.h>
#include <pthread.h>
#include <time.h>

#define OF_CUDA 1
#define OF_EMU 1
#define OF_WARP 32
#define warpSize 32

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __shared__ static
#define __constant__ static
#define __align__(n) alignas(n)
#define OF_DEV inline

// Largest block and dynamic shared area a launch may ask for.
#define EMU_MAX_THREADS 1024
#define EMU_MAX_DYNAMIC_SHARED (228 * 1024)

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
typedef dim3 uint3;

static dim3 blockIdx, blockDim, gridDim;
static thread_local dim3 threadIdx;

// The dynamic shared area of the block that is running: every `extern __shared__` array of the
// source is defined by the generated wrapper as an alias of it.
extern "C" {
__attribute__((visibility("hidden"))) alignas(256) unsigned char emu_dynamic_shared[EMU_MAX_DYNAMIC_SHARED];
}

namespace emu {

// One slot per thread for the warp exchanges.
static unsigned long long lane_slots[EMU_MAX_THREADS];

static thread_local unsigned linear_tid;

struct Block {
    std::optional<std::barrier<>> block;
    std::optional<std::barrier<>> warps[EMU_MAX_THREADS / 32];
};
static Block barriers;

inline unsigned warp_base() { return linear_tid - linear_tid % 32; }

// After each block barrier one thread of the block, picked pseudo-randomly per (block, barrier),
// sleeps 50 µs before going on while the others run ahead: a race that needs one thread to lag
// behind (a missing barrier before shared memory is reused) then shows up within a few launches.
static thread_local unsigned barrier_phase;
static unsigned block_serial;
inline void jitter() {
    unsigned x = (block_serial * 0x9e3779b9u) ^ (++barrier_phase * 0x85ebca6bu);
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    if (x % (blockDim.x * blockDim.y * blockDim.z) == linear_tid) {
        const timespec pause{0, 50000};
        nanosleep(&pause, nullptr);
    }
}

inline void sync_block() {
    barriers.block->arrive_and_wait();
    jitter();
}
inline void sync_warp() { barriers.warps[linear_tid / 32]->arrive_and_wait(); }

// Every lane publishes `v`, then reads lane `src(lane)`'s value (its own when out of range).
template <typename T, typename F> inline T exchange(T v, F src) {
    static_assert(sizeof(T) <= sizeof(unsigned long long), "warp exchange of a wide type");
    unsigned long long bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    const unsigned lane = linear_tid % 32;
    lane_slots[linear_tid] = bits;
    sync_warp();
    int s = src((int)lane);
    unsigned long long got = (s >= 0 && s < 32) ? lane_slots[warp_base() + (unsigned)s] : bits;
    sync_warp();
    T r;
    std::memcpy(&r, &got, sizeof(T));
    return r;
}

}  // namespace emu

inline void __syncthreads() { emu::sync_block(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::sync_warp(); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
[[noreturn]] inline void __trap() {
    std::fprintf(stderr, "omnifuse gpu-emu: __trap() in block (%u, %u, %u) thread (%u, %u, %u)\n", blockIdx.x,
                 blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
    std::abort();
}

template <typename T> inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
    return emu::exchange(v, [&](int lane) { return (lane ^ mask) / width == lane / width ? lane ^ mask : lane; });
}
template <typename T> inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
    return emu::exchange(v, [&](int lane) { return (lane / width) * width + (src % width); });
}
template <typename T> inline T __shfl_down_sync(unsigned, T v, unsigned d, int width = 32) {
    return emu::exchange(v, [&](int lane) {
        return (lane % width) + (int)d < width ? lane + (int)d : lane;
    });
}
template <typename T> inline T __shfl_up_sync(unsigned, T v, unsigned d, int width = 32) {
    return emu::exchange(v, [&](int lane) { return (lane % width) >= (int)d ? lane - (int)d : lane; });
}

// Integer and float min/max as CUDA declares them for device code.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }

// IEEE-rounded intrinsics and bit casts.
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __expf(float a) { return expf(a); }
inline float __logf(float a) { return logf(a); }
inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
inline int __float2int_rn(float a) { return (int)nearbyintf(a); }
inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float __int_as_float(int u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline int __float_as_int(float f) {
    int u;
    std::memcpy(&u, &f, 4);
    return u;
}
template <typename T> inline T __ldg(const T* p) { return *p; }

// Atomics on "device" (host) memory.
template <typename T> inline T atomicAdd(T* p, T v) { return std::atomic_ref<T>(*p).fetch_add(v); }
template <typename T> inline T atomicMax(T* p, T v) {
    std::atomic_ref<T> a(*p);
    T old = a.load();
    while (old < v && !a.compare_exchange_weak(old, v)) {
    }
    return old;
}
template <typename T> inline T atomicMin(T* p, T v) {
    std::atomic_ref<T> a(*p);
    T old = a.load();
    while (old > v && !a.compare_exchange_weak(old, v)) {
    }
    return old;
}
template <typename T> inline T atomicExch(T* p, T v) { return std::atomic_ref<T>(*p).exchange(v); }
template <typename T> inline T atomicCAS(T* p, T cmp, T v) {
    std::atomic_ref<T>(*p).compare_exchange_strong(cmp, v);
    return cmp;
}

// ---- the compat header's interface ----

typedef unsigned short of_f16;
struct of_bf16 {
    unsigned short bits;
};
typedef signed char of_i8;
typedef unsigned long long of_u64;

OF_DEV float of_f16_to_f32(of_f16 h) {
    _Float16 x;
    std::memcpy(&x, &h, 2);
    return (float)x;
}

OF_DEV of_f16 of_f32_to_f16(float f) {
    _Float16 x = (_Float16)f;
    of_f16 h;
    std::memcpy(&h, &x, 2);
    return h;
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

OF_DEV float of_gelu(float x) { return 0.5f * x * erfcf(-x * 0.70710678118654752f); }

OF_DEV float of_act(float x, int act) { return act == 1 ? fmaxf(x, 0.0f) : (act == 2 ? of_gelu(x) : x); }

OF_DEV float of_warp_sum(float v) {
    for (int o = OF_WARP / 2; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

OF_DEV float of_warp_max(float v) {
    for (int o = OF_WARP / 2; o > 0; o >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    }
    return v;
}

// ---- the grid runner ----

namespace emu {

// Launch status codes (the Rust side names them).
enum Status : int {
    OK = 0,
    BAD_BLOCK = 1,      // zero or more than EMU_MAX_THREADS threads
    BAD_SHARED = 2,     // more dynamic shared memory than EMU_MAX_DYNAMIC_SHARED
    NO_THREADS = 3,     // the worker pool could not grow
    EXCEPTION = 4,      // a C++ exception escaped the kernel
    SHARED_OVERRUN = 5, // a block wrote past the dynamic shared memory the launch gave it
};

// Bytes after the launch's dynamic shared memory checked for stray writes after each block.
#define EMU_SHARED_GUARD 4096
#define EMU_GUARD_BYTE 0xa5

// The block being run: what every worker reads after it is woken.
struct Job {
    void (*body)(void*);
    void* ctx;
};

// Workers sleep on `word` (generation << 32 | threads of the block); the coordinator bumps
// the generation once per block and waits for `remaining` to reach zero.
struct Pool {
    std::mutex launch;
    std::atomic<unsigned long long> word{0};
    std::atomic<unsigned> remaining{0};
    std::atomic<int> failed{0};
    Job job{};
    unsigned workers = 0;
};

static Pool& pool() {
    // Never destroyed: workers sleep inside it until the process ends.
    static Pool* p = new Pool();
    return *p;
}

static void* worker_main(void* arg) {
    const unsigned t = (unsigned)(std::uintptr_t)arg;
    Pool& p = pool();
    linear_tid = t;
    unsigned long long seen = 0;
    for (;;) {
        p.word.wait(seen, std::memory_order_acquire);
        seen = p.word.load(std::memory_order_acquire);
        const unsigned nt = (unsigned)(seen & 0xffffffffu);
        if (t >= nt) {
            continue;
        }
        threadIdx.x = t % blockDim.x;
        threadIdx.y = (t / blockDim.x) % blockDim.y;
        threadIdx.z = t / (blockDim.x * blockDim.y);
        barrier_phase = 0;
        try {
            p.job.body(p.job.ctx);
        } catch (...) {
            p.failed.store(1, std::memory_order_relaxed);
        }
        // A thread that is done leaves its barriers, so the rest of the block is not held up.
        barriers.warps[t / 32]->arrive_and_drop();
        barriers.block->arrive_and_drop();
        if (p.remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            p.remaining.notify_one();
        }
    }
    return nullptr;
}

static bool grow(Pool& p, unsigned n) {
    while (p.workers < n) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 1 << 20);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t th;
        int rc = pthread_create(&th, &attr, worker_main, (void*)(std::uintptr_t)p.workers);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            return false;
        }
        p.workers++;
    }
    return true;
}

// Run `body(ctx)` as every thread of every block of the grid.
static int run_grid(dim3 g, dim3 b, unsigned shared_bytes, void (*body)(void*), void* ctx) {
    const unsigned long long nt64 = (unsigned long long)b.x * b.y * b.z;
    if (nt64 == 0 || nt64 > EMU_MAX_THREADS) {
        return BAD_BLOCK;
    }
    if (shared_bytes > EMU_MAX_DYNAMIC_SHARED) {
        return BAD_SHARED;
    }
    const unsigned nt = (unsigned)nt64;
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.launch);
    if (!grow(p, nt)) {
        return NO_THREADS;
    }
    gridDim = g;
    blockDim = b;
    p.job = Job{body, ctx};
    p.failed.store(0);
    const unsigned guard = std::min<unsigned>(EMU_SHARED_GUARD, EMU_MAX_DYNAMIC_SHARED - shared_bytes);
    for (unsigned bz = 0; bz < g.z; bz++) {
        for (unsigned by = 0; by < g.y; by++) {
            for (unsigned bx = 0; bx < g.x; bx++) {
                blockIdx = dim3{bx, by, bz};
                block_serial++;
                std::memset(emu_dynamic_shared, 0xff, shared_bytes);
                std::memset(emu_dynamic_shared + shared_bytes, EMU_GUARD_BYTE, guard);
                barriers.block.emplace(nt);
                for (unsigned w = 0; w * 32 < nt; w++) {
                    barriers.warps[w].emplace(std::min(32u, nt - w * 32));
                }
                p.remaining.store(nt, std::memory_order_relaxed);
                const unsigned long long gen = (p.word.load(std::memory_order_relaxed) >> 32) + 1;
                p.word.store((gen << 32) | nt, std::memory_order_release);
                p.word.notify_all();
                for (unsigned left = p.remaining.load(std::memory_order_acquire); left != 0;
                     left = p.remaining.load(std::memory_order_acquire)) {
                    p.remaining.wait(left, std::memory_order_acquire);
                }
                for (unsigned i = 0; i < guard; i++) {
                    if (emu_dynamic_shared[shared_bytes + i] != EMU_GUARD_BYTE) {
                        return SHARED_OVERRUN;
                    }
                }
            }
        }
    }
    return p.failed.load() ? EXCEPTION : OK;
}

// Parameter kind codes the host checks its argument list against: p pointer, i int,
// u unsigned, l long long, L unsigned long long, f float, ? anything else.
template <typename T> constexpr char kind() {
    if constexpr (std::is_pointer_v<T>) {
        return 'p';
    } else if constexpr (std::is_same_v<T, float>) {
        return 'f';
    } else if constexpr (std::is_integral_v<T> && sizeof(T) == 4) {
        return std::is_signed_v<T> ? 'i' : 'u';
    } else if constexpr (std::is_integral_v<T> && sizeof(T) == 8) {
        return std::is_signed_v<T> ? 'l' : 'L';
    } else {
        return '?';
    }
}

template <typename... P> struct Signature {
    static constexpr char text[sizeof...(P) + 1] = {kind<std::decay_t<P>>()..., '\0'};
};

template <typename... P> const char* signature(void (*)(P...)) { return Signature<P...>::text; }

// The kernel and its unpacked arguments, for the workers.
template <typename... P> struct Call {
    void (*fn)(P...);
    std::tuple<std::decay_t<P>...> args;
    static void run(void* self) {
        auto* c = static_cast<Call*>(self);
        std::apply(c->fn, c->args);
    }
};

// Each args[i] points at the value of parameter i (as cuLaunchKernel takes them).
template <typename... P, std::size_t... I>
int launch_with(void (*fn)(P...), void** args, std::index_sequence<I...>, dim3 g, dim3 b, unsigned shared_bytes) {
    Call<P...> call{fn, {}};
    ((std::memcpy(&std::get<I>(call.args), args[I], sizeof(std::decay_t<P>))), ...);
    try {
        return run_grid(g, b, shared_bytes, &Call<P...>::run, &call);
    } catch (...) {
        return EXCEPTION;
    }
}

template <typename... P>
int launch(void (*fn)(P...), unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
           unsigned shared_bytes, void** args) {
    return launch_with(fn, args, std::index_sequence_for<P...>{}, dim3{gx, gy, gz}, dim3{bx, by, bz},
                       shared_bytes);
}

}  // namespace emu
