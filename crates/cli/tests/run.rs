//! End-to-end tests of `omnifuse run` and `omnifuse init-model`: every modality mix runs,
//! results are deterministic, and each kind of bad input gives a clear error with exit code 2
//! and no panic.

#![allow(clippy::panic)] // test helpers fail by panicking

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn omnifuse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_omnifuse")).args(args).output().expect("run omnifuse")
}

fn text_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "failed: {}", text_of(&o.stderr));
    serde_json::from_str(&text_of(&o.stdout)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text_of(&o.stdout)))
}

/// A scratch directory per test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("omnifuse-run-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend(data);
    out.extend(&body);
    out.extend(crc32(&body).to_be_bytes());
}

fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, b) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        out.extend((b.len() as u16).to_le_bytes());
        out.extend((!(b.len() as u16)).to_le_bytes());
        out.extend(*b);
    }
    let (mut a, mut s) = (1u32, 0u32);
    for &x in data {
        a = (a + x as u32) % 65_521;
        s = (s + a) % 65_521;
    }
    out.extend(((s << 16) | a).to_be_bytes());
    out
}

/// An RGB PNG of `w`×`h` with a gradient, or just the header when `data` is false.
fn png(w: u32, h: u32, data: bool) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    if data {
        let mut raw = Vec::new();
        for y in 0..h {
            raw.push(0);
            for x in 0..w {
                raw.extend([(x * 7 % 256) as u8, (y * 5 % 256) as u8, ((x + y) % 256) as u8]);
            }
        }
        chunk(&mut out, b"IDAT", &zlib_stored(&raw));
        chunk(&mut out, b"IEND", &[]);
    }
    out
}

/// A 16 kHz mono 16-bit WAV of a 440 Hz tone.
fn wav(samples: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..samples)
        .flat_map(|i| {
            ((0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin() * 32767.0) as i16).to_le_bytes()
        })
        .collect();
    let mut out = b"RIFF".to_vec();
    out.extend((36 + data.len() as u32).to_le_bytes());
    out.extend(b"WAVEfmt ");
    out.extend(16u32.to_le_bytes());
    out.extend(1u16.to_le_bytes());
    out.extend(1u16.to_le_bytes());
    out.extend(16_000u32.to_le_bytes());
    out.extend(32_000u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(16u16.to_le_bytes());
    out.extend(b"data");
    out.extend((data.len() as u32).to_le_bytes());
    out.extend(data);
    out
}

/// A Y4M (C420jpeg) of `frames` frames of `w`×`h`; `short` bytes missing from the last.
fn y4m(w: usize, h: usize, frames: usize, short: usize) -> Vec<u8> {
    let mut out = format!("YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg\n").into_bytes();
    let size = w * h + 2 * (w.div_ceil(2) * h.div_ceil(2));
    for f in 0..frames {
        out.extend(b"FRAME\n");
        let n = if f + 1 == frames { size - short } else { size };
        out.extend((0..n).map(|i| ((i * 3 + f * 17) % 220 + 16) as u8));
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write input");
    p.to_string_lossy().into_owned()
}

#[test]
fn every_modality_mix_runs_and_each_head_answers() {
    let d = scratch("mix");
    let img = write(&d, "a.png", &png(40, 30, true));
    let snd = write(&d, "a.wav", &wav(12_000));
    let vid = write(&d, "a.y4m", &y4m(32, 24, 5, 0));
    let mixes: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["--text", "a calm sea at dawn"], vec!["text"]),
        (vec![img.as_str()], vec!["image"]),
        (vec![snd.as_str()], vec!["audio"]),
        (vec![vid.as_str()], vec!["video"]),
        (
            vec!["--text", "描述这张图片", img.as_str(), snd.as_str(), vid.as_str()],
            vec!["text", "image", "audio", "video"],
        ),
    ];
    for (args, modalities) in mixes {
        let mut all = vec!["run", "--json", "--max-tokens", "4"];
        all.extend(&args);
        let v = json(&omnifuse(&all));
        let seen: Vec<&str> = v["inputs"].as_array().unwrap().iter().map(|i| i["modality"].as_str().unwrap()).collect();
        assert_eq!(seen, modalities);
        let p: f64 =
            v["heads"]["sentiment"]["probabilities"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).sum();
        assert!((p - 1.0).abs() < 1e-5, "probabilities sum to {p}");
        let r = &v["heads"]["retrieval"];
        assert_eq!(r["inputs"].as_array().unwrap().len(), modalities.len());
        let norm: f64 = r["fused"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap().powi(2)).sum();
        assert!((norm - 1.0).abs() < 1e-4, "fused embedding norm² {norm}");
        assert!(v["heads"]["caption"]["tokens"].as_array().unwrap().len() <= 4);
        for m in modalities {
            assert!(v["timing_ms"]["encode"][m].as_f64().is_some(), "no encode time for {m}: {v}");
        }
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn same_input_same_output_across_runs_and_thread_counts() {
    let d = scratch("det");
    let img = write(&d, "a.png", &png(24, 24, true));
    let snd = write(&d, "a.wav", &wav(5000));
    let heads = |threads: &str| {
        let v = json(&omnifuse(&["run", "--json", "--threads", threads, "--text", "same again", &img, &snd]));
        v["heads"].to_string()
    };
    let one = heads("1");
    assert_eq!(one, heads("1"));
    assert_eq!(one, heads("2"));
    assert_eq!(one, heads("3"));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_json_request_in_the_seed_format_runs() {
    use base64::Engine as _;
    let d = scratch("req");
    let b64 = base64::engine::general_purpose::STANDARD;
    let req = serde_json::json!({
        "inputs": [{"text": "描述这张图片"}, {"image": b64.encode(png(16, 16, true))}, {"audio": b64.encode(wav(4000))}],
        "parameters": {"task_type": "visual_question_answering", "max_tokens": 3}
    });
    let path = write(&d, "req.json", req.to_string().as_bytes());
    let v = json(&omnifuse(&["run", "--json", "--request", &path]));
    let heads: Vec<&String> = v["heads"].as_object().unwrap().keys().collect();
    assert_eq!(heads, vec!["caption"], "visual_question_answering asks the generation head only");
    assert!(v["heads"]["caption"]["tokens"].as_array().unwrap().len() <= 3);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn init_model_writes_a_directory_that_run_loads() {
    let d = scratch("init");
    let dir = d.join("m").to_string_lossy().into_owned();
    let o = omnifuse(&["init-model", "--out", &dir]);
    assert!(o.status.success(), "{}", text_of(&o.stderr));
    let from_dir = json(&omnifuse(&["run", "--json", "--model", &dir, "--text", "hello"]));
    let builtin = json(&omnifuse(&["run", "--json", "--text", "hello"]));
    assert_eq!(from_dir["heads"], builtin["heads"], "the written model is the built-in one");
    std::fs::remove_dir_all(&d).ok();
}

/// Runs `args`, expects exit code 2 and a message containing `needle`, and no panic.
fn refused(args: &[&str], needle: &str) {
    let o = omnifuse(args);
    let err = text_of(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: expected exit 2, stderr: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(err.to_lowercase().contains(&needle.to_lowercase()), "{args:?}: '{needle}' not in: {err}");
}

#[test]
fn a_corrupt_png_is_refused() {
    let d = scratch("bad-png");
    let mut corrupt = png(8, 8, true);
    let n = corrupt.len();
    corrupt[n - 30..n - 12].fill(0xAB);
    refused(&["run", &write(&d, "corrupt.png", &corrupt)], "input 0");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_truncated_wav_is_refused() {
    let d = scratch("bad-wav");
    let full = wav(8000);
    refused(&["run", &write(&d, "trunc.wav", &full[..full.len() / 2])], "input 0");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn empty_text_is_refused() {
    refused(&["run", "--text", ""], "empty");
    refused(&["run", "--text", "  \t "], "empty");
}

#[test]
fn a_decompression_bomb_header_is_refused_before_decoding() {
    let d = scratch("bad-bomb");
    refused(&["run", &write(&d, "bomb.png", &png(20_000, 20_000, false))], "20000");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_y4m_with_a_wrong_frame_size_is_refused() {
    let d = scratch("bad-y4m");
    refused(&["run", &write(&d, "short.y4m", &y4m(16, 16, 3, 7))], "input 0");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn an_unknown_task_is_refused() {
    refused(&["run", "--task", "astrology", "--text", "hi"], "unknown task 'astrology'");
}

#[test]
fn unknown_bytes_and_no_inputs_are_refused() {
    let d = scratch("bad-bytes");
    refused(&["run", &write(&d, "noise.bin", b"\x01\x02\x03 not a known format")], "input 0");
    refused(&["run"], "no inputs");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn weights_of_the_wrong_shape_are_refused() {
    let d = scratch("bad-weights");
    let dir = d.join("m");
    let dirs = dir.to_string_lossy().into_owned();
    assert!(omnifuse(&["init-model", "--out", &dirs]).status.success());
    let cfg = std::fs::read_to_string(dir.join("config.toml")).expect("config");
    let edited = cfg.replacen("width = 192", "width = 96", 1);
    assert_ne!(cfg, edited, "the image width line is where this test expects it");
    std::fs::write(dir.join("config.toml"), edited).expect("edit config");
    refused(&["run", "--model", &dirs, "--text", "hi"], "expected [96");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn an_index_filled_by_index_add_answers_text_to_image_and_image_to_text() {
    let d = scratch("index");
    let ix = d.join("ix.json").to_string_lossy().into_owned();
    let red = write(&d, "red.png", &png(16, 16, true));
    let wide = write(&d, "wide.png", &png(48, 16, true));
    let o = omnifuse(&["index", "add", "--index", &ix, &red, &wide, "--text", "a red square"]);
    assert!(o.status.success(), "{}", text_of(&o.stderr));
    let listed = text_of(&omnifuse(&["index", "list", "--index", &ix]).stdout);
    assert!(listed.contains("3 entries") && listed.contains("2 image") && listed.contains("1 text"), "{listed}");
    let v = json(&omnifuse(&["run", "--json", "--task", "retrieval", "--index", &ix, "--text", "a red square", &red]));
    let matches = v["heads"]["retrieval"]["matches"].as_array().expect("matches");
    let text_hits: Vec<&str> = matches[0].as_array().unwrap().iter().map(|m| m["modality"].as_str().unwrap()).collect();
    assert_eq!(text_hits, ["image", "image"], "text finds the images only");
    let image_hits = matches[1].as_array().unwrap();
    assert_eq!(image_hits.len(), 1);
    assert_eq!(image_hits[0]["key"], "a red square");
    // Scores are cosines of normalised embeddings.
    for m in matches[0].as_array().unwrap() {
        let s = m["score"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&s), "{s}");
    }
    refused(&["run", "--index", &d.join("missing.json").to_string_lossy(), "--text", "x"], "reading index");
    std::fs::remove_dir_all(&d).ok();
}
