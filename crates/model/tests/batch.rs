//! Requests fused together in one batch answer exactly what they answer alone: each is its own
//! packed sequence of the fusion pass, so batching changes speed, not results. A bad request
//! fails alone.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use std::sync::Arc;

use omnifuse_core::Backend;
use omnifuse_cpu::CpuBackend;
use omnifuse_model::Model;
use omnifuse_model::input::{PixelData, RawInput};
use omnifuse_model::output::HeadResult;
use omnifuse_model::request::Parameters;

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-30);
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn same(alone: &HeadResult, batched: &HeadResult) {
    match (alone, batched) {
        (
            HeadResult::Classification { probabilities: p, label: l, .. },
            HeadResult::Classification { probabilities: q, label: m, .. },
        ) => {
            assert_eq!(l, m);
            assert!(max_rel(q, p) < 1e-5, "{p:?} vs {q:?}");
        }
        (HeadResult::Retrieval { fused: f, inputs: i, .. }, HeadResult::Retrieval { fused: g, inputs: j, .. }) => {
            assert!(max_rel(g, f) < 1e-5);
            for (x, y) in i.iter().zip(j) {
                assert!(max_rel(y, x) < 1e-5);
            }
        }
        (
            HeadResult::Generation { tokens: t, logprobs: a, .. },
            HeadResult::Generation { tokens: u, logprobs: b, .. },
        ) => {
            assert_eq!(t, u);
            assert!(max_rel(b, a) < 1e-4, "{a:?} vs {b:?}");
        }
        _ => panic!("head kinds differ"),
    }
}

fn frame(seed: u8) -> RawInput {
    let data: Vec<u8> = (0..32 * 24 * 3).map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed)).collect();
    RawInput::Pixels { height: 24, width: 32, data: PixelData::U8(data) }
}

#[test]
fn a_batch_answers_what_each_request_answers_alone() {
    let backend: Arc<dyn Backend> = Arc::new(CpuBackend::fast().unwrap());
    let model = Model::preset("omni-small", backend).unwrap();
    let pixels: Vec<u8> = (0..40 * 30 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let tone: Vec<f32> = (0..9000).map(|i| (i as f32 * 0.07).sin() * 0.3).collect();
    let requests: Vec<Vec<RawInput>> = vec![
        vec![RawInput::Text("a calm sea at dawn".into())],
        vec![
            RawInput::Text("what is in the picture?".into()),
            RawInput::Pixels { height: 30, width: 40, data: PixelData::U8(pixels.clone()) },
        ],
        vec![RawInput::Pcm { samples: tone.clone(), sample_rate: 16_000 }],
        // Encoders batch by modality across requests: two more audio inputs of odd lengths
        // (the stride-2 packing), two more images, a video, and two texts in one request.
        vec![
            RawInput::Pcm { samples: tone[..7_321].to_vec(), sample_rate: 16_000 },
            RawInput::Pixels { height: 30, width: 40, data: PixelData::U8(pixels.iter().rev().copied().collect()) },
            RawInput::Pcm { samples: tone[..4_003].iter().map(|x| -x).collect(), sample_rate: 16_000 },
        ],
        vec![
            RawInput::Text("two dogs".into()),
            RawInput::Frames(vec![frame(1), frame(2), frame(3)]),
            RawInput::Text("run in the park at night, music plays softly".into()),
            RawInput::Pixels { height: 30, width: 40, data: PixelData::U8(pixels.clone()) },
        ],
    ];
    // Different token budgets and samplers: the generation head decodes the batch in lockstep
    // and drops requests from it as they finish, so each must still get its own tokens.
    let params = [
        Parameters { max_tokens: Some(2), ..Parameters::default() },
        Parameters {
            max_tokens: Some(7),
            temperature: Some(0.8),
            top_k: Some(5),
            seed: Some(3),
            ..Parameters::default()
        },
        Parameters { max_tokens: Some(4), ..Parameters::default() },
        Parameters { max_tokens: Some(3), ..Parameters::default() },
        Parameters { max_tokens: Some(5), ..Parameters::default() },
    ];
    let alone: Vec<_> = requests.iter().zip(&params).map(|(r, p)| model.run(r, p).unwrap()).collect();
    let jobs: Vec<(&[RawInput], &Parameters)> = requests.iter().zip(&params).map(|(r, p)| (r.as_slice(), p)).collect();
    let batched = model.run_batch(&jobs);
    assert_eq!(batched.len(), 5);
    let lengths: Vec<usize> = batched
        .iter()
        .map(|r| match &r.as_ref().unwrap().heads["caption"] {
            HeadResult::Generation { tokens, .. } => tokens.len(),
            _ => panic!("caption is a generation head"),
        })
        .collect();
    assert!(lengths[0] <= 2 && lengths[1] <= 7 && lengths[2] <= 4, "{lengths:?}");
    for (a, b) in alone.iter().zip(batched) {
        let b = b.unwrap();
        assert_eq!(a.heads.keys().collect::<Vec<_>>(), b.heads.keys().collect::<Vec<_>>());
        for (name, r) in &a.heads {
            same(r, &b.heads[name]);
        }
    }
}

#[test]
fn a_bad_request_fails_alone_in_its_batch() {
    let backend: Arc<dyn Backend> = Arc::new(CpuBackend::fast().unwrap());
    let model = Model::preset("omni-small", backend).unwrap();
    let good = vec![RawInput::Text("fine".into())];
    let bad = vec![RawInput::Bytes(b"\x00\x01 not a known format".to_vec())];
    let params = Parameters { tasks: vec!["sentiment".into()], ..Parameters::default() };
    let out = model.run_batch(&[(&good, &params), (&bad, &params), (&good, &params)]);
    assert!(out[0].is_ok() && out[2].is_ok());
    let err = out[1].as_ref().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("input 0"), "{err}");
    // A token budget the decoder cannot hold fails that request only; the rest generate.
    let fine = Parameters { max_tokens: Some(3), ..Parameters::default() };
    let greedy = Parameters { max_tokens: Some(100_000), ..Parameters::default() };
    let out = model.run_batch(&[(&good, &fine), (&good, &greedy), (&good, &fine)]);
    assert!(out[0].is_ok() && out[2].is_ok());
    let err = out[1].as_ref().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("max_tokens 100000"), "{err}");
}

/// Requests of every mix asking only the one-pass heads: each head runs once over the batch
/// (one GEMM over a pooled row per request, so every request is charged the same pass), and
/// each request's answer matches its answer alone within 1e-5 relative — in FP32 and in INT8
/// (whose inputs are quantised per row, so a row's neighbours do not change it).
#[test]
fn classification_and_retrieval_heads_run_once_per_batch_and_match_alone() {
    let pixels: Vec<u8> = (0..40 * 30 * 3).map(|i| (i * 13 % 253) as u8).collect();
    let tone: Vec<f32> = (0..6000).map(|i| (i as f32 * 0.11).sin() * 0.2).collect();
    let image = |rev: bool| RawInput::Pixels {
        height: 30,
        width: 40,
        data: PixelData::U8(if rev { pixels.iter().rev().copied().collect() } else { pixels.clone() }),
    };
    let requests: Vec<Vec<RawInput>> = vec![
        vec![RawInput::Text("a red car on the street".into())],
        vec![image(false)],
        vec![RawInput::Text("what sound is that".into()), RawInput::Pcm { samples: tone.clone(), sample_rate: 16_000 }],
        vec![RawInput::Text("lights".into())],
        vec![image(true), RawInput::Pcm { samples: tone[..3001].to_vec(), sample_rate: 16_000 }],
        vec![RawInput::Frames(vec![frame(5), frame(6)]), RawInput::Text("city at night".into())],
        vec![RawInput::Text("two".into()), RawInput::Text("texts".into()), image(false)],
    ];
    for precision in [omnifuse_model::Precision::Fp32, omnifuse_model::Precision::Int8] {
        let backend: Arc<dyn Backend> = Arc::new(CpuBackend::fast().unwrap());
        let model = Model::preset_in("omni-small", backend, precision).unwrap();
        let params = Parameters { tasks: vec!["classification".into(), "retrieval".into()], ..Parameters::default() };
        let alone: Vec<_> = requests.iter().map(|r| model.run(r, &params).unwrap()).collect();
        let jobs: Vec<(&[RawInput], &Parameters)> = requests.iter().map(|r| (r.as_slice(), &params)).collect();
        let batched: Vec<_> = model.run_batch(&jobs).into_iter().map(|r| r.unwrap()).collect();
        let heads: Vec<&String> = alone[0].heads.keys().collect();
        assert!(heads.len() >= 2, "{precision}: a classification and a retrieval head: {heads:?}");
        for (a, b) in alone.iter().zip(&batched) {
            assert_eq!(a.heads.keys().collect::<Vec<_>>(), heads);
            for (name, r) in &a.heads {
                same(r, &b.heads[name]);
            }
        }
        for name in heads {
            let times: Vec<f64> = batched.iter().map(|r| r.timing_ms.heads[name]).collect();
            assert!(times.iter().all(|&t| t == times[0]), "{precision}: head {name} ran once per batch: {times:?}");
        }
    }
}
