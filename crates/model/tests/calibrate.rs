//! Static INT8 calibration end to end: SmoothQuant leaves the FP32 model's answers unchanged,
//! and a model with calibrated static activation steps saves, loads, runs with them and stays
//! close to FP32.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use std::sync::Arc;

use omnifuse_core::Backend;
use omnifuse_cpu::CpuBackend;
use omnifuse_model::calibrate::{Method, apply, collect};
use omnifuse_model::input::RawInput;
use omnifuse_model::output::{HeadResult, Response};
use omnifuse_model::request::Parameters;
use omnifuse_model::smooth::smooth;
use omnifuse_model::weights::{Weights, spec};
use omnifuse_model::{Config, Model, Precision};

fn requests() -> Vec<Vec<RawInput>> {
    let texts = ["a heron stands in the shallow water", "the market opens early on sunday", "rain again"];
    let mut out: Vec<Vec<RawInput>> = texts.iter().map(|t| vec![RawInput::Text(t.to_string())]).collect();
    let samples: Vec<f32> = (0..8000).map(|i| (i as f32 * 0.07).sin() * 0.5).collect();
    out.push(vec![RawInput::Text("a tone".into()), RawInput::Pcm { samples, sample_rate: 16_000 }]);
    out
}

fn params() -> Parameters {
    Parameters { tasks: vec!["retrieval".into(), "sentiment".into()], ..Parameters::default() }
}

fn caption(r: &Response) -> Vec<i32> {
    match &r.heads["caption"] {
        HeadResult::Generation { tokens, .. } => tokens.clone(),
        other => panic!("caption head answered {other:?}"),
    }
}

fn fused(r: &Response) -> Vec<f32> {
    match &r.heads["retrieval"] {
        HeadResult::Retrieval { fused, .. } => fused.clone(),
        other => panic!("retrieval head answered {other:?}"),
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

fn backend() -> Arc<dyn Backend> {
    Arc::new(CpuBackend::fast().unwrap())
}

#[test]
fn smoothing_keeps_the_fp32_model_s_answers() {
    let config = Config::preset("omni-small").unwrap();
    let weights = Weights::generate(&config).unwrap();
    let mut model = Model::new(config.clone(), &weights, backend(), None).unwrap();
    let (layers, shared) = collect(&mut model, &requests()).unwrap();
    let mut smoothed = weights.clone();
    let done = smooth(&mut smoothed, &layers, &shared, 0.5).unwrap();
    assert!(done.layers() >= 4, "only {} Linear layers were smoothed: {:?}", done.layers(), done.norms);
    assert!(done.norms.keys().all(|n| n.contains("ln")), "{:?}", done.norms);
    assert_ne!(
        smoothed.get(&done.norms.values().next().unwrap()[0]).unwrap(),
        weights.get(&done.norms.values().next().unwrap()[0]).unwrap()
    );
    let after = Model::new(config, &smoothed, backend(), None).unwrap();
    for r in requests() {
        let (a, b) = (model.run(&r, &params()).unwrap(), after.run(&r, &params()).unwrap());
        let (fa, fb) = (fused(&a), fused(&b));
        let scale = fa.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let err = fa.iter().zip(&fb).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(err <= 1e-4 * scale, "smoothing changed the FP32 embedding by {err} (scale {scale})");
    }
    // The caption decoder's layers are recorded and smoothed too, and its greedy answer stays.
    assert!(layers.contains_key("heads.caption.blocks.0.self.qkv.weight"), "{:?}", layers.keys());
    assert!(done.norms.keys().any(|n| n.starts_with("heads.caption.")), "{:?}", done.norms);
    let all = Parameters::default();
    for r in requests().iter().take(2) {
        assert_eq!(caption(&model.run(r, &all).unwrap()), caption(&after.run(r, &all).unwrap()));
    }
}

#[test]
fn a_calibrated_static_model_loads_runs_and_stays_close_to_fp32() {
    let mut config = Config::preset("omni-small").unwrap();
    let weights = Weights::generate(&config).unwrap();
    let mut fp32 = Model::new(config.clone(), &weights, backend(), None).unwrap();
    let (layers, _) = collect(&mut fp32, &requests()).unwrap();
    let mut q = weights.clone();
    q.quantize_int8(&spec(&config), &[]).unwrap();
    let n = apply(&mut q, &layers, Method::MinMax).unwrap();
    assert!(n > 20, "only {n} layers got a static step");
    config.quant.activations = "static-minmax".into();
    let dir = std::env::temp_dir().join(format!("omnifuse-calib-test-{}", std::process::id()));
    Model::save(&dir, &config, &q).unwrap();
    let loaded = Model::load(&dir, backend()).unwrap();
    assert_eq!((loaded.precision(), loaded.static_layers()), (Precision::Int8, n));
    let dynamic = Model::with_precision(config.clone(), weights.clone(), backend(), None, Precision::Int8).unwrap();
    assert_eq!(dynamic.static_layers(), 0);
    for r in requests() {
        let (a, s, d) =
            (fp32.run(&r, &params()).unwrap(), loaded.run(&r, &params()).unwrap(), dynamic.run(&r, &params()).unwrap());
        let (cs, cd) = (cosine(&fused(&a), &fused(&s)), cosine(&fused(&a), &fused(&d)));
        eprintln!("cosine with fp32: static {cs:.6}, dynamic {cd:.6}");
        assert!(cs >= 0.995, "static INT8 embedding cosine with FP32 is {cs}");
        assert_ne!(fused(&s), fused(&d), "the static steps were not used");
    }
    std::fs::remove_dir_all(&dir).ok();
}
