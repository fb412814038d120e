//! The fused attention never materialises the score matrix: one long sequence, 8 heads,
//! head_dim 64, runs with its working memory measured by a counting allocator and bounded far
//! below the score matrix of a single head: 32768 tokens by default, whose scores would take
//! 4 GiB per head (about a minute on two cores); `ATT_TOKENS=N` picks another length.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use omnifuse_core::{AttentionSpec, Backend, DType, HostTensor, MaskMode, Op, TensorDesc};
use omnifuse_cpu::CpuBackend;

/// System allocator that tracks live and peak bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn run(tokens: usize, heads: usize, dh: usize, mask: MaskMode) -> (usize, std::time::Duration) {
    let cpu = CpuBackend::fast().expect("cpu");
    let qkv: Vec<f32> = (0..tokens * heads * dh).map(|i| ((i % 97) as f32 - 48.0) / 64.0).collect();
    let x = HostTensor::from_slice([tokens, heads, dh], &qkv).expect("qkv");
    let cu = HostTensor::from_slice([2], &[0i32, tokens as i32]).expect("cu");
    let ids = HostTensor::from_slice([tokens], &(0..tokens).map(|i| (i * 3 / tokens) as i8).collect::<Vec<_>>())
        .expect("ids");
    let ins: Vec<_> = [&x, &x, &x, &cu, &cu, &ids, &ids].iter().map(|h| cpu.to_device(h).expect("upload")).collect();
    let refs: Vec<_> = ins.iter().collect();
    let spec = AttentionSpec { heads, kv_heads: heads, modalities: 3, mask, bias: false, scale: None };
    let out = cpu.empty(&TensorDesc::new([tokens, heads, dh], DType::F32)).expect("out");
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let t = std::time::Instant::now();
    cpu.launch(&Op::FusedAttention(spec), &refs, &out).expect("launch");
    let took = t.elapsed();
    let extra = PEAK.load(Ordering::Relaxed) - before;
    let host = cpu.to_host(&out).expect("download").to_f32();
    assert!(host.iter().all(|v| v.is_finite()));
    (extra, took)
}

#[test]
fn long_sequence_runs_in_bounded_memory() {
    let tokens = std::env::var("ATT_TOKENS").ok().and_then(|v| v.parse().ok()).unwrap_or(32768);
    let (heads, dh) = (8, 64);
    let (extra, took) = run(tokens, heads, dh, MaskMode::Intra);
    let scores_per_head = tokens * tokens * 4;
    eprintln!(
        "{tokens} tokens x {heads} heads x {dh}: {extra} bytes of working memory in {took:?}; one head's scores would be {scores_per_head}"
    );
    // Working memory is linear: a transposed copy of K plus per-task state (the launch reads
    // the inputs in place) — at most twice K's size, and a small fraction of one head's scores.
    let k_bytes = tokens * heads * dh * 4;
    assert!(extra <= 2 * k_bytes, "working memory {extra} bytes for K of {k_bytes}");
    assert!(extra * 8 < scores_per_head, "working memory {extra} bytes");
}
