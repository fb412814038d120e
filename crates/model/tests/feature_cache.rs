//! The feature cache: a repeated input skips its encoder and gives the same answer; hits and
//! misses are counted; the byte bound holds, least recently used entries going first.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use std::sync::Arc;

use omnifuse_core::Backend;
use omnifuse_cpu::CpuBackend;
use omnifuse_model::Model;
use omnifuse_model::input::{PixelData, RawInput};
use omnifuse_model::output::HeadResult;
use omnifuse_model::request::Parameters;

fn model(cache_bytes: usize) -> Model {
    let backend: Arc<dyn Backend> = Arc::new(CpuBackend::fast().unwrap());
    let mut m = Model::preset("omni-small", backend).unwrap();
    m.set_feature_cache(cache_bytes);
    m
}

fn image(seed: u8) -> RawInput {
    let data: Vec<u8> = (0..40 * 30 * 3).map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed)).collect();
    RawInput::Pixels { height: 30, width: 40, data: PixelData::U8(data) }
}

fn fused(r: &omnifuse_model::output::Response) -> Vec<f32> {
    match &r.heads["retrieval"] {
        HeadResult::Retrieval { fused, .. } => fused.clone(),
        _ => panic!("retrieval is a retrieval head"),
    }
}

#[test]
fn a_repeated_input_hits_and_answers_the_same() {
    let m = model(64 << 20);
    let params = Parameters { tasks: vec!["retrieval".into()], ..Parameters::default() };
    let req = vec![RawInput::Text("a red car".into()), image(3)];
    let first = m.run(&req, &params).unwrap();
    let s = m.feature_cache_stats().unwrap();
    assert_eq!((s.hits, s.misses, s.entries), (0, 2, 2));
    assert!(s.bytes > 0 && s.bytes <= s.capacity_bytes);
    let again = m.run(&req, &params).unwrap();
    let s = m.feature_cache_stats().unwrap();
    assert_eq!((s.hits, s.misses), (2, 2));
    assert_eq!(s.hit_rate(), Some(0.5));
    assert_eq!(fused(&first), fused(&again), "a hit gives the very same encoding");
    // Same image, new text: one hit, one miss. And a batch shares the cache too.
    let other = vec![RawInput::Text("a blue car".into()), image(3)];
    let jobs: Vec<(&[RawInput], &Parameters)> = vec![(&other, &params), (&req, &params)];
    for r in m.run_batch(&jobs) {
        r.unwrap();
    }
    let s = m.feature_cache_stats().unwrap();
    assert_eq!((s.hits, s.misses), (2 + 3, 2 + 1));
    // Without a cache the answers are the same.
    let plain = model(0);
    assert!(plain.feature_cache_stats().is_none());
    let alone = plain.run(&req, &params).unwrap();
    let (a, b) = (fused(&alone), fused(&first));
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5), "{a:?} vs {b:?}");
}

#[test]
fn the_byte_bound_evicts_least_recently_used_first() {
    // Learn one image encoding's size, then allow two of them.
    let probe = model(64 << 20);
    let params = Parameters { tasks: vec!["sentiment".into()], ..Parameters::default() };
    probe.run(&[image(1)], &params).unwrap();
    let one = probe.feature_cache_stats().unwrap().bytes;
    let m = model(2 * one);
    for seed in [1, 2] {
        m.run(&[image(seed)], &params).unwrap();
    }
    m.run(&[image(1)], &params).unwrap(); // hit: 1 becomes the most recent
    m.run(&[image(3)], &params).unwrap(); // evicts 2
    let s = m.feature_cache_stats().unwrap();
    assert_eq!((s.hits, s.misses, s.entries, s.bytes), (1, 3, 2, 2 * one));
    m.run(&[image(1)], &params).unwrap();
    assert_eq!(m.feature_cache_stats().unwrap().hits, 2, "image 1 stayed");
    m.run(&[image(2)], &params).unwrap();
    assert_eq!(m.feature_cache_stats().unwrap().misses, 4, "image 2 was evicted");
    // An encoding larger than the whole bound is never kept.
    let tiny = model(16);
    tiny.run(&[image(1)], &params).unwrap();
    assert_eq!(tiny.feature_cache_stats().unwrap().entries, 0);
}
