//! The feature cache: encoder outputs (layer 1) kept by (modality, content hash, model,
//! precision), bounded by bytes, least recently used evicted first. A request whose image,
//! clip or text was encoded before skips its encoder. Hits and misses are counted so servers
//! and benchmarks can report the hit rate.
//!
//! The content hash is two independent 64-bit hashes of the prepared input (token ids, or the
//! normalised pixels / log-mel features with their frame count), so two different inputs
//! share an entry only if both collide.

use std::hash::{DefaultHasher, Hasher};
use std::sync::Mutex;

use omnifuse_core::Tensor;

use crate::fusion::Encoded;
use crate::input::Prepared;

/// What identifies one cached encoding.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Key {
    modality: &'static str,
    model: String,
    precision: &'static str,
    len: usize,
    hash: (u64, u64),
}

impl Key {
    /// The key of `input` under model `model` at precision `precision`.
    pub fn new(input: &Prepared, model: &str, precision: &'static str) -> Key {
        let seeds = [0x6f6d_6e69_6675_7365u64, 0x9e37_79b9_7f4a_7c15u64];
        let hash = |seed: u64| {
            let mut h = DefaultHasher::new();
            h.write_u64(seed);
            let (bytes, extra): (&[u8], usize) = match input {
                Prepared::Text { ids } => (bytemuck::cast_slice(ids), 0),
                Prepared::Image { pixels } => (bytemuck::cast_slice(pixels), 0),
                Prepared::Audio { logmel, frames } => (bytemuck::cast_slice(logmel), *frames),
                Prepared::Video { pixels, frames } => (bytemuck::cast_slice(pixels), *frames),
            };
            h.write_usize(extra);
            h.write(bytes);
            h.finish()
        };
        let len = match input {
            Prepared::Text { ids } => ids.len(),
            Prepared::Image { pixels } | Prepared::Video { pixels, .. } => pixels.len(),
            Prepared::Audio { logmel, .. } => logmel.len(),
        };
        Key {
            modality: input.modality().name(),
            model: model.to_string(),
            precision,
            len,
            hash: (hash(seeds[0]), hash(seeds[1])),
        }
    }
}

/// Counters of a cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Lookups that found an entry.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Entries held.
    pub entries: usize,
    /// Bytes held (the encodings' tensor sizes).
    pub bytes: usize,
    /// The bound on bytes.
    pub capacity_bytes: usize,
}

impl CacheStats {
    /// Hits over lookups, or `None` before the first lookup.
    pub fn hit_rate(&self) -> Option<f64> {
        let n = self.hits + self.misses;
        (n > 0).then(|| self.hits as f64 / n as f64)
    }
}

struct Inner {
    map: lru::LruCache<Key, Encoded>,
    stats: CacheStats,
}

/// An LRU cache of encodings bounded by bytes; shared between threads.
pub struct FeatureCache {
    inner: Mutex<Inner>,
}

fn bytes_of(t: &Tensor) -> usize {
    t.desc.shape.dims().iter().product::<usize>() * t.desc.dtype.size()
}

impl FeatureCache {
    /// A cache holding at most `capacity_bytes` of encodings.
    pub fn new(capacity_bytes: usize) -> FeatureCache {
        let stats = CacheStats { capacity_bytes, ..CacheStats::default() };
        FeatureCache { inner: Mutex::new(Inner { map: lru::LruCache::unbounded(), stats }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every update is a whole
        // insert or remove), so a poisoned lock is taken over.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The encoding of `key`, counted as a hit or a miss.
    pub fn get(&self, key: &Key) -> Option<Encoded> {
        let mut g = self.lock();
        let found = g.map.get(key).cloned();
        if found.is_some() {
            g.stats.hits += 1;
        } else {
            g.stats.misses += 1;
        }
        found
    }

    /// Keep `value` under `key`, evicting the least recently used entries to stay within the
    /// bound. An encoding larger than the whole bound is not kept.
    pub fn put(&self, key: Key, value: Encoded) {
        let size = bytes_of(&value.tokens);
        let mut g = self.lock();
        if size > g.stats.capacity_bytes {
            return;
        }
        if let Some(old) = g.map.pop(&key) {
            g.stats.bytes -= bytes_of(&old.tokens);
        }
        while g.stats.bytes + size > g.stats.capacity_bytes {
            match g.map.pop_lru() {
                Some((_, old)) => g.stats.bytes -= bytes_of(&old.tokens),
                None => break,
            }
        }
        g.map.put(key, value);
        g.stats.bytes += size;
    }

    /// The counters now.
    pub fn stats(&self) -> CacheStats {
        let g = self.lock();
        CacheStats { entries: g.map.len(), ..g.stats }
    }
}
