//! Packed forms of constant GEMM operands (weights), built on first use and kept with the
//! buffer they were built from, so a GEMM on a weight skips packing it on every later call.
//!
//! Identity: the cache of a buffer lives inside that buffer's storage ([`PackSlot`] in
//! `CpuStorage`), so it dies with the buffer; a new buffer that happens to get a freed one's
//! address starts with an empty slot and can never see the old buffer's panels. Writing to a
//! buffer (an upload or a launch output) clears its slot under the write lock, so a later
//! read never meets panels of older contents. Only buffers marked constant
//! (`Backend::mark_constant`) cache anything.
//!
//! Each entry is keyed by what its layout depends on ([`PackKey`]: the packing scheme, which
//! names the kernel's panel width and reduction block, and
//! the operand's shape and orientation; only f32 and i8 sources are packed, so the element
//! type follows from the scheme). Memory is bounded per backend ([`Budget`]): an entry
//! that would pass the cap is built, used once and dropped, as without the cache.
//!
//! Concurrency: panels are built outside any lock (a build may run in parallel on the pool,
//! and a pool thread waiting on a lock could deadlock against work it stole), then inserted
//! under a short lock; when two launches race on a fresh weight, the first insert wins and
//! the other's copy is used once and dropped.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Default cap of one backend's packed weights, in bytes (override with
/// `OMNIFUSE_PACK_CACHE_MB`; 0 turns the cache off).
const DEFAULT_CAP: u64 = 2 << 30;

/// What a packed form's layout depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackKey {
    /// The packing scheme (kernel family and panel geometry, e.g. `f32/nr64/kc512`).
    pub scheme: &'static str,
    /// Rows of the logical operand `Bᵀ` (output columns `n`).
    pub n: usize,
    /// Reduction length `k`.
    pub k: usize,
    /// `B` is stored `[n, k]`.
    pub trans_b: bool,
}

/// A packed operand: any type the kernels define, with its size for the budget.
pub struct Packed {
    value: Box<dyn Any + Send + Sync>,
    bytes: u64,
}

impl Packed {
    /// Wrap a packed form of `bytes` bytes.
    pub fn new<T: Any + Send + Sync>(value: T, bytes: usize) -> Self {
        Packed { value: Box::new(value), bytes: bytes as u64 }
    }

    /// The packed form, if it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.value.downcast_ref()
    }
}

/// The memory cap and the counters shared by every slot of one backend.
#[derive(Debug)]
pub struct Budget {
    cap: u64,
    used: AtomicU64,
    hits: AtomicU64,
    builds: AtomicU64,
}

/// A snapshot of a backend's packed-weight cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackStats {
    /// Bytes held by cached packed forms.
    pub bytes: u64,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Packed forms built (cached or, past the cap, used once).
    pub builds: u64,
}

impl Budget {
    /// A budget of `cap` bytes.
    pub fn new(cap: u64) -> Arc<Self> {
        Arc::new(Budget { cap, used: AtomicU64::new(0), hits: AtomicU64::new(0), builds: AtomicU64::new(0) })
    }

    /// The cap from `OMNIFUSE_PACK_CACHE_MB`, else the default.
    pub fn from_env() -> Arc<Self> {
        let cap = std::env::var("OMNIFUSE_PACK_CACHE_MB")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_CAP, |mb| mb << 20);
        Self::new(cap)
    }

    /// The counters now.
    pub fn stats(&self) -> PackStats {
        PackStats {
            bytes: self.used.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            builds: self.builds.load(Ordering::Relaxed),
        }
    }

    /// Reserve `bytes` if they fit under the cap.
    fn reserve(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_add(bytes).filter(|&t| t <= self.cap))
            .is_ok()
    }

    fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// The packed forms of one buffer (see the module docs).
pub struct PackSlot {
    constant: AtomicBool,
    /// Set while `entries` may be non-empty, so writes to ordinary buffers skip the lock.
    filled: AtomicBool,
    entries: Mutex<Vec<(PackKey, Arc<Packed>)>>,
    budget: Arc<Budget>,
}

impl PackSlot {
    /// An empty slot charging `budget`.
    pub fn new(budget: Arc<Budget>) -> Self {
        PackSlot {
            constant: AtomicBool::new(false),
            filled: AtomicBool::new(false),
            entries: Mutex::new(Vec::new()),
            budget,
        }
    }

    /// Mark the buffer constant: from now on its packed forms are kept.
    pub fn mark_constant(&self) {
        self.constant.store(true, Ordering::Release);
    }

    /// Whether the buffer was marked constant.
    pub fn is_constant(&self) -> bool {
        self.constant.load(Ordering::Acquire)
    }

    /// The packed form under `key`, built by `build` on the first call. The caller holds the
    /// buffer's read lock, so its contents cannot change meanwhile.
    pub fn get_or_build(&self, key: PackKey, build: impl FnOnce() -> Packed) -> Arc<Packed> {
        if let Some(hit) = self.lookup(&key) {
            self.budget.hits.fetch_add(1, Ordering::Relaxed);
            return hit;
        }
        let packed = Arc::new(build());
        self.budget.builds.fetch_add(1, Ordering::Relaxed);
        let Ok(mut entries) = self.entries.lock() else { return packed };
        if let Some((_, e)) = entries.iter().find(|(k, _)| *k == key) {
            return e.clone();
        }
        if self.budget.reserve(packed.bytes) {
            entries.push((key, packed.clone()));
            self.filled.store(true, Ordering::Release);
        }
        packed
    }

    fn lookup(&self, key: &PackKey) -> Option<Arc<Packed>> {
        if !self.filled.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        entries.iter().find(|(k, _)| k == key).map(|(_, e)| e.clone())
    }

    /// Drop every packed form (the buffer is being written).
    pub fn clear(&self) {
        if !self.filled.swap(false, Ordering::AcqRel) {
            return;
        }
        let drained: Vec<_> = match self.entries.lock() {
            Ok(mut e) => e.drain(..).collect(),
            Err(_) => return,
        };
        for (_, p) in drained {
            self.budget.release(p.bytes);
        }
    }
}

impl std::fmt::Debug for PackSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("PackSlot").field("constant", &self.is_constant()).field("entries", &entries).finish()
    }
}

impl Drop for PackSlot {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> PackKey {
        PackKey { scheme: "test", n, k: 4, trans_b: true }
    }

    #[test]
    fn builds_once_then_hits_and_releases_on_clear() {
        let budget = Budget::new(1 << 20);
        let slot = PackSlot::new(budget.clone());
        let a = slot.get_or_build(key(1), || Packed::new(vec![1u8; 100], 100));
        let b = slot.get_or_build(key(1), || panic!("must hit"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(budget.stats(), PackStats { bytes: 100, hits: 1, builds: 1 });
        let _ = slot.get_or_build(key(2), || Packed::new(vec![2u8; 50], 50));
        assert_eq!(budget.stats().bytes, 150);
        slot.clear();
        assert_eq!(budget.stats().bytes, 0);
        let _ = slot.get_or_build(key(1), || Packed::new(vec![3u8; 100], 100));
        assert_eq!(budget.stats().builds, 3);
        drop(slot);
        assert_eq!(budget.stats().bytes, 0);
    }

    #[test]
    fn past_the_cap_nothing_is_kept() {
        let budget = Budget::new(64);
        let slot = PackSlot::new(budget.clone());
        let p = slot.get_or_build(key(1), || Packed::new(7u32, 100));
        assert_eq!(p.get::<u32>(), Some(&7));
        let _ = slot.get_or_build(key(1), || Packed::new(8u32, 100));
        assert_eq!(budget.stats(), PackStats { bytes: 0, hits: 0, builds: 2 });
    }
}
