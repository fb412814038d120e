//! Real pretrained weights against the framework that published them: `omnifuse embed` on
//! sentence-transformers' all-MiniLM-L6-v2 must give the token ids and (to cosine ≥ 0.99999)
//! the sentence vectors that sentence-transformers itself gave for the sentences of
//! `tests/data/minilm_golden.json` (made by `tools/minilm/golden.py`).
//!
//! The model directory comes from `OMNIFUSE_MINILM_DIR` (`tools/minilm/fetch.sh` prints it;
//! ci/test.sh sets it); without it these tests skip with a message, so `cargo test` works offline.
//! `OMNIFUSE_MINILM_BACKEND` picks the device (default `cpu`).

#![allow(clippy::panic, clippy::unwrap_used)] // test helpers fail by panicking

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const MIN_COSINE: f64 = 0.99999;

fn model_dir() -> Option<PathBuf> {
    match std::env::var_os("OMNIFUSE_MINILM_DIR") {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => {
            eprintln!(
                "SKIPPED: OMNIFUSE_MINILM_DIR is not set; run `OMNIFUSE_MINILM_DIR=$(bash tools/minilm/fetch.sh) \
                 cargo test --release -p omnifuse-cli --test minilm` to check all-MiniLM-L6-v2"
            );
            None
        }
    }
}

fn backend() -> String {
    std::env::var("OMNIFUSE_MINILM_BACKEND").unwrap_or_else(|_| "cpu".into())
}

fn omnifuse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_omnifuse")).args(args).output().expect("run omnifuse")
}

fn ok_json(o: &Output) -> Value {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "omnifuse failed: {err}");
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}); stderr: {err}"))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("omnifuse-minilm-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

struct Golden {
    texts: Vec<String>,
    ids: Vec<Vec<i64>>,
    vectors: Vec<Vec<f64>>,
}

fn golden() -> Golden {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/minilm_golden.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let items = v["items"].as_array().unwrap();
    let mut g = Golden { texts: Vec::new(), ids: Vec::new(), vectors: Vec::new() };
    for it in items {
        g.texts.push(it["text"].as_str().unwrap().to_string());
        g.ids.push(it["ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect());
        g.vectors.push(it["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect());
    }
    assert!(g.texts.len() >= 60, "the golden file holds {} sentences", g.texts.len());
    g
}

/// Embed `texts` (one per line of a file) with `--json --ids`.
fn embed(model: &Path, texts: &[String], name: &str) -> (Vec<Vec<i64>>, Vec<Vec<f64>>) {
    embed_in(model, texts, name, "fp32")
}

/// [`embed`] in `precision`.
fn embed_in(model: &Path, texts: &[String], name: &str, precision: &str) -> (Vec<Vec<i64>>, Vec<Vec<f64>>) {
    let dir = scratch(name);
    let file = dir.join("sentences.txt");
    std::fs::write(&file, texts.join("\n") + "\n").unwrap();
    let out = omnifuse(&[
        "embed",
        "--model",
        model.to_str().unwrap(),
        "--backend",
        &backend(),
        "--precision",
        precision,
        "--file",
        file.to_str().unwrap(),
        "--json",
        "--ids",
    ]);
    std::fs::remove_dir_all(&dir).ok();
    let v = ok_json(&out);
    assert_eq!(v["dim"], 384);
    let ids = v["ids"].as_array().unwrap();
    let emb = v["embeddings"].as_array().unwrap();
    assert_eq!((ids.len(), emb.len()), (texts.len(), texts.len()), "one result per line");
    (
        ids.iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()).collect(),
        emb.iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()).collect(),
    )
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn every_golden_sentence_matches_sentence_transformers() {
    let Some(model) = model_dir() else { return };
    let g = golden();
    let (ids, vectors) = embed(&model, &g.texts, "golden");
    let mut worst = (f64::INFINITY, 0usize);
    let mut max_abs = 0.0f64;
    for (i, text) in g.texts.iter().enumerate() {
        assert_eq!(ids[i], g.ids[i], "token ids of sentence {i} ({text:?})");
        let norm: f64 = vectors[i].iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "sentence {i} ({text:?}): norm {norm}, expected 1");
        let c = cosine(&vectors[i], &g.vectors[i]);
        if c < worst.0 {
            worst = (c, i);
        }
        for (a, b) in vectors[i].iter().zip(&g.vectors[i]) {
            max_abs = max_abs.max((a - b).abs());
        }
    }
    eprintln!(
        "all-MiniLM-L6-v2 on {}: {} sentences, token ids identical, min cosine {:.12} (1 − cos = {:.1e}, sentence {}), \
         max |Δ| {:.2e}",
        backend(),
        g.texts.len(),
        worst.0,
        1.0 - worst.0,
        worst.1,
        max_abs
    );
    assert!(worst.0 >= MIN_COSINE, "sentence {} ({:?}): cosine {} < {MIN_COSINE}", worst.1, g.texts[worst.1], worst.0);
}

/// INT8 (dense layers on the INT8 GEMM, activations per token) stays close to what
/// sentence-transformers gave in FP32: the retrieval set's recall is measured by
/// `tools/minilm/retrieval.py --precision int8`; here each vector's cosine is bounded.
#[test]
fn int8_stays_close_to_the_published_vectors() {
    let Some(model) = model_dir() else { return };
    let g = golden();
    let (ids, vectors) = embed_in(&model, &g.texts, "int8", "int8");
    assert_eq!(ids, g.ids, "INT8 must not change tokenisation");
    let cos: Vec<f64> = vectors.iter().zip(&g.vectors).map(|(a, b)| cosine(a, b)).collect();
    let mean = cos.iter().sum::<f64>() / cos.len() as f64;
    let min = cos.iter().copied().fold(1.0, f64::min);
    eprintln!("all-MiniLM-L6-v2 INT8 on {}: cosine with sentence-transformers mean {mean:.6}, min {min:.6}", backend());
    assert!(mean >= 0.995 && min >= 0.975, "INT8 cosine mean {mean}, min {min}");
}

#[test]
fn an_imported_directory_gives_the_same_vectors() {
    let Some(model) = model_dir() else { return };
    let g = golden();
    let out_dir = scratch("import").join("minilm");
    let o = omnifuse(&[
        "import",
        "--from",
        "sentence-transformers",
        model.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "import failed: {}", String::from_utf8_lossy(&o.stderr));
    for f in ["encoder.toml", "model.safetensors", "tokenizer.json"] {
        assert!(out_dir.join(f).is_file(), "import wrote no {f}");
    }
    let texts: Vec<String> = g.texts.iter().take(12).cloned().collect();
    let direct = embed(&model, &texts, "direct");
    let imported = embed(&out_dir, &texts, "imported");
    std::fs::remove_dir_all(out_dir.parent().unwrap()).ok();
    assert_eq!(direct, imported, "the imported directory must embed exactly as the source directory");
}

#[test]
fn batching_does_not_change_a_sentence_vector() {
    let Some(model) = model_dir() else { return };
    let g = golden();
    let alone = embed(&model, &g.texts[..1], "alone");
    let together = embed(&model, &g.texts[..8], "together");
    let c = cosine(&alone.1[0], &together.1[0]);
    assert!(c >= 0.999_999, "sentence 0 alone vs in a batch of 8: cosine {c}");
}

#[test]
fn an_omni_model_with_the_pretrained_text_encoder_runs() {
    let Some(model) = model_dir() else { return };
    let g = golden();
    let out_dir = scratch("omni").join("model");
    let o = omnifuse(&[
        "import",
        "--from",
        "sentence-transformers",
        model.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--omni",
        "omni-small",
    ]);
    assert!(o.status.success(), "import --omni failed: {}", String::from_utf8_lossy(&o.stderr));
    // The longest golden sentence (truncated to 256 tokens) and a short one.
    let long = (0..g.texts.len()).max_by_key(|&i| g.ids[i].len()).unwrap();
    let v = ok_json(&omnifuse(&[
        "run",
        "--model",
        out_dir.to_str().unwrap(),
        "--backend",
        &backend(),
        "--text",
        &g.texts[0],
        "--text",
        &g.texts[long],
        "--json",
    ]));
    std::fs::remove_dir_all(out_dir.parent().unwrap()).ok();
    let tokens: Vec<usize> =
        v["inputs"].as_array().unwrap().iter().map(|i| i["tokens"].as_u64().unwrap() as usize).collect();
    assert_eq!(tokens, vec![g.ids[0].len(), g.ids[long].len()], "text tokens per input: {v}");
    assert_eq!(g.ids[long].len(), 256);
    assert!(v["heads"]["retrieval"].is_object(), "{v}");
}
