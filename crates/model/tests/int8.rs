//! Lower precisions end to end: a model quantised to INT8 as it loads answers exactly what the
//! INT8 directory `quantize` would write answers after a save and load, stays close to FP32,
//! is about a quarter of the FP32 file, and an INT8 directory refuses to run as FP32; FP16
//! storage stays closer still.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use std::sync::Arc;

use omnifuse_core::Backend;
use omnifuse_cpu::CpuBackend;
use omnifuse_model::input::RawInput;
use omnifuse_model::output::HeadResult;
use omnifuse_model::request::Parameters;
use omnifuse_model::weights::{Weights, spec};
use omnifuse_model::{Config, Model, Precision};

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

fn fused(r: &omnifuse_model::output::Response) -> Vec<f32> {
    match &r.heads["retrieval"] {
        HeadResult::Retrieval { fused, .. } => fused.clone(),
        other => panic!("retrieval head answered {other:?}"),
    }
}

#[test]
fn quantised_on_load_equals_saved_and_reloaded_and_stays_close_to_fp32() {
    let backend: Arc<dyn Backend> = Arc::new(CpuBackend::fast().unwrap());
    let config = Config::preset("omni-small").unwrap();
    let weights = Weights::generate(&config).unwrap();
    let dir = std::env::temp_dir().join(format!("omnifuse-int8-test-{}", std::process::id()));
    let (f32_dir, i8_dir) = (dir.join("f32"), dir.join("i8"));
    Model::save(&f32_dir, &config, &weights).unwrap();
    let mut q = weights.clone();
    let linear = q.quantize_int8(&spec(&config), &config.quant.keep_fp32).unwrap();
    assert!(linear > 40, "only {linear} Linear weights were quantised");
    Model::save(&i8_dir, &config, &q).unwrap();
    let size = |d: &std::path::Path| std::fs::metadata(d.join("model.safetensors")).unwrap().len() as f64;
    let ratio = size(&i8_dir) / size(&f32_dir);
    assert!(ratio <= 0.27, "the INT8 file is {:.1}% of the FP32 one", ratio * 100.0);

    let inputs = vec![RawInput::Text("a heron stands in the shallow water".into())];
    let params = Parameters { max_tokens: Some(4), ..Parameters::default() };
    let fp32 = Model::load(&f32_dir, backend.clone()).unwrap();
    let on_load = Model::load_in(&f32_dir, backend.clone(), Precision::Int8).unwrap();
    let reloaded = Model::load(&i8_dir, backend.clone()).unwrap();
    assert_eq!(reloaded.precision(), Precision::Int8);
    let (a, b, c) = (
        fp32.run(&inputs, &params).unwrap(),
        on_load.run(&inputs, &params).unwrap(),
        reloaded.run(&inputs, &params).unwrap(),
    );
    assert_eq!(fused(&b), fused(&c), "quantised on load and reloaded from disk must agree exactly");
    let cos = cosine(&fused(&a), &fused(&b));
    assert!(cos > 0.999, "INT8 embedding cosine with FP32 is {cos}");
    assert_ne!(fused(&a), fused(&b), "INT8 must actually run in INT8");

    let half = Model::load_in(&f32_dir, backend.clone(), Precision::Fp16).unwrap();
    assert_eq!(half.precision(), Precision::Fp16);
    let h = half.run(&inputs, &params).unwrap();
    let cos = cosine(&fused(&a), &fused(&h));
    assert!(cos > 0.99999, "FP16 embedding cosine with FP32 is {cos}");

    let err = Model::load_in(&i8_dir, backend, Precision::Fp32).err().unwrap().to_string();
    assert!(err.contains("--precision int8"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
