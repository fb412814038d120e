//! The emulator on a small kernel of its own: grid and block indices, static and dynamic
//! shared memory, `__syncthreads`, warp shuffles, threads that exit early, parameters of every
//! kind, argument checking, and the disk cache. Skips when there is no C++ compiler.

use omnifuse_gpu_emu::{Origin, Param, compiler, load};

/// Per block: each thread loads one value (threads past `n` return at once), the block sums
/// them through a shuffle reduction per warp and static shared memory, and thread 0 writes
/// the sum times `scale` plus `offset`; each thread also copies its value, doubled, through
/// dynamic shared memory read back by its mirror thread of the block.
const SOURCE: &str = r#"
#include "omnifuse_gpu.h"
#ifndef BLOCK
#error "BLOCK must be defined"
#endif
template <typename T>
OF_DEV void block_sum(const T* x, float* sums, T* mirror, of_u64 n, float scale, int offset) {
    extern __shared__ float dyn[];
    __shared__ float partial[BLOCK / 32];
    const of_u64 base = (of_u64)(blockIdx.y * gridDim.x + blockIdx.x) * blockDim.x;
    const unsigned t = threadIdx.x;
    float v = base + t < n ? (float)x[base + t] : 0.0f;
    dyn[t] = 2.0f * v;
    v = of_warp_sum(v);
    if (t % OF_WARP == 0) partial[t / OF_WARP] = v;
    __syncthreads();
    if (base + t < n) mirror[base + t] = (T)dyn[blockDim.x - 1 - t];
    if (t >= 32) return;  // the rest of the block is done
    float s = t < blockDim.x / OF_WARP ? partial[t] : 0.0f;
    s = of_warp_sum(s);
    if (t == 0) sums[blockIdx.y * gridDim.x + blockIdx.x] = s * scale + (float)offset;
}
#define STAMP(DT, T) \
    extern "C" __global__ void __launch_bounds__(BLOCK) block_sum_##DT(const T* x, float* sums, T* mirror, of_u64 n, float scale, int offset) { \
        block_sum<T>(x, sums, mirror, n, scale, offset); \
    }
STAMP(f32, float)
STAMP(i32, int)
"#;

fn ptr<T>(v: &mut [T]) -> Param {
    Param::ptr(v.as_mut_ptr() as u64)
}

#[test]
fn runs_a_grid_with_barriers_shuffles_and_shared_memory() {
    if let Err(why) = compiler::get() {
        eprintln!("skipping: {why}");
        return;
    }
    let block = 128u32;
    let defines = vec![format!("-DBLOCK={block}")];
    let m = load("block_sum.cu", SOURCE, &defines).expect("the test kernel builds");
    assert_eq!(m.signature("block_sum_f32").unwrap(), "pppLfi");

    let n = 1000usize;
    let grid = [4u32, 2, 1];
    let blocks = (grid[0] * grid[1]) as usize;
    let mut x: Vec<f32> = (0..n).map(|i| (i % 17) as f32 - 8.0).collect();
    let mut sums = vec![f32::NAN; blocks];
    let mut mirror = vec![f32::NAN; n];
    let args = [ptr(&mut x), ptr(&mut sums), ptr(&mut mirror), Param::u64(n as u64), Param::f32(0.5), Param::i32(3)];
    m.launch("block_sum_f32", grid, [block, 1, 1], block * 4, &args).expect("the launch runs");
    for (b, &s) in sums.iter().enumerate() {
        let lo = (b * block as usize).min(n);
        let hi = ((b + 1) * block as usize).min(n);
        let want: f32 = x[lo..hi].iter().sum::<f32>() * 0.5 + 3.0;
        assert_eq!(s, want, "block {b}");
    }
    for (i, &v) in mirror.iter().enumerate() {
        let b = i / block as usize;
        let j = b * block as usize + (block as usize - 1 - i % block as usize);
        // Threads past `n` still write dyn[t] (as 0) before the barrier.
        let want = if j < n { 2.0 * x[j] } else { 0.0 };
        assert_eq!(v, want, "element {i}");
    }

    // The other instantiation, same module.
    let mut xi: Vec<i32> = (0..n as i32).collect();
    let mut si = vec![0f32; blocks];
    let mut mi = vec![0i32; n];
    let args = [ptr(&mut xi), ptr(&mut si), ptr(&mut mi), Param::u64(n as u64), Param::f32(1.0), Param::i32(0)];
    m.launch("block_sum_i32", grid, [block, 1, 1], block * 4, &args).unwrap();
    assert_eq!(si[0], (0..128).sum::<i32>() as f32);

    // Wrong arguments are refused by name, before anything runs.
    let bad = [ptr(&mut x), ptr(&mut sums), ptr(&mut mirror), Param::i32(n as i32), Param::f32(0.5), Param::i32(3)];
    let e = m.launch("block_sum_f32", grid, [block, 1, 1], block * 4, &bad).unwrap_err().to_string();
    assert!(e.contains("unsigned long long") && e.contains("block_sum_f32"), "{e}");
    let e = m.launch("block_sum_i32", grid, [block, 1, 1], block * 2, &args).unwrap_err().to_string();
    assert!(e.contains("past the dynamic shared memory"), "{e}");
    let e = m.launch("nope", grid, [block, 1, 1], 0, &args).unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
    let e = m.launch("block_sum_i32", grid, [2048, 1, 1], 0, &args).unwrap_err().to_string();
    assert!(e.contains("1024"), "{e}");

    // A second load of the same variant is the same module; the disk cache holds it.
    let again = load("block_sum.cu", SOURCE, &defines).unwrap();
    assert!(std::sync::Arc::ptr_eq(&m, &again));
    assert!(m.path().is_file());
    eprintln!("module {} ({:?}) at {}", m.label(), m.origin(), m.path().display());
    assert!(matches!(m.origin(), Origin::Compiled | Origin::Cached));
}

#[test]
fn compile_errors_name_the_source() {
    if compiler::get().is_err() {
        return;
    }
    let e = load("block_sum.cu", SOURCE, &[]).unwrap_err().to_string();
    assert!(e.contains("block_sum.cu") && e.contains("BLOCK must be defined"), "{e}");
}
