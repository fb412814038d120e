//! The C ABI from C: builds `tests/c/smoke.c` with the system C compiler against the shared
//! library `libomnifuse.so` this crate builds, runs it (engine, synchronous and 8-thread
//! asynchronous inference, errors, cancellation, host kernels), and requires every result it
//! printed to be bit-identical to the in-process Rust `Model::run` of the same request. Then
//! runs it again under valgrind, when valgrind is installed, requiring 0 errors and 0 bytes
//! definitely lost.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)] // tests fail by panicking

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use omnifuse_model::config::HeadKind;
use omnifuse_model::input::{PixelData, RawInput};
use omnifuse_model::output::{HeadResult, Response};
use omnifuse_model::request::Parameters;
use omnifuse_model::weights::Weights;
use omnifuse_model::{Config, Model};

/// The directory the shared library was built into (next to this test's executable).
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for dir in [deps, deps.parent().unwrap()] {
        if dir.join("libomnifuse.so").exists() {
            return dir.to_path_buf();
        }
    }
    panic!(
        "libomnifuse.so is not in {} or its parent: build it with `cargo build --release -p omnifuse-capi`",
        deps.display()
    );
}

fn png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(48, 32, |x, y| image::Rgb([(x * 5) as u8, (y * 7) as u8, ((x + y) * 3) as u8]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn wav() -> Vec<u8> {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut out = Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    for i in 0..6000 {
        w.write_sample(((i as f32 * 0.05).sin() * 12000.0) as i16).unwrap();
    }
    w.finalize().unwrap();
    out.into_inner()
}

/// The four requests `smoke.c` builds, in the same order with the same contents.
fn requests(png: &[u8], wav: &[u8]) -> Vec<Vec<RawInput>> {
    let pixels: Vec<u8> = (0..30 * 40 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let tone: Vec<f32> = (0..9000).map(|i| (i as f32 * 0.07).sin() * 0.3).collect();
    vec![
        vec![RawInput::Text("a calm sea at dawn".into())],
        vec![RawInput::Text("what is in the picture?".into()), RawInput::Bytes(png.to_vec())],
        vec![RawInput::Bytes(wav.to_vec()), RawInput::Pixels { height: 30, width: 40, data: PixelData::U8(pixels) }],
        vec![RawInput::Pcm { samples: tone, sample_rate: 16_000 }, RawInput::Text("声音".into())],
    ]
}

/// Compile the smoke program in `work` against the library in `lib`; `None` (with the reason
/// printed) when there is no C compiler.
fn compile(work: &Path, lib: &Path) -> Option<PathBuf> {
    if Command::new("cc").arg("--version").output().is_err() {
        println!("SKIPPED: no C compiler `cc` on this machine; the C ABI smoke test needs one");
        return None;
    }
    // The library's soname is libomnifuse.so.1: give it that name, and the development
    // symlink the linker looks for, as an installation would.
    let so1 = work.join("libomnifuse.so.1");
    std::fs::copy(lib.join("libomnifuse.so"), &so1).unwrap();
    let link = work.join("libomnifuse.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("libomnifuse.so.1", &link).unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = work.join("smoke");
    let out = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g"])
        .arg("-I")
        .arg(manifest.join("../../include"))
        .arg(manifest.join("tests/c/smoke.c"))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", work.display()))
        .arg(format!("-Wl,-rpath,{}", work.display()))
        .args(["-lomnifuse", "-lpthread", "-lm"])
        .output()
        .unwrap();
    assert!(out.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&out.stderr));
    Some(exe)
}

/// What the smoke program printed: each result's JSON and each head's f32 bit patterns.
#[derive(Default)]
struct Printed {
    json: BTreeMap<String, String>,
    f32: BTreeMap<(String, String), Vec<u32>>,
    lines: Vec<String>,
}

fn parse(stdout: &str) -> Printed {
    let mut p = Printed::default();
    let mut rest = stdout;
    while let Some((line, tail)) = rest.split_once('\n') {
        rest = tail;
        let words: Vec<&str> = line.split(' ').collect();
        match words.first().copied() {
            Some("JSON") => {
                let len: usize = words[2].parse().unwrap();
                p.json.insert(words[1].to_string(), rest[..len].to_string());
                rest = &rest[len + 1..];
            }
            Some("F32") => {
                let bits = words[3..].iter().map(|w| u32::from_str_radix(w, 16).unwrap()).collect();
                p.f32.insert((words[1].to_string(), words[2].to_string()), bits);
            }
            _ => p.lines.push(line.to_string()),
        }
    }
    p
}

fn head_vector(h: &HeadResult) -> &[f32] {
    match h {
        HeadResult::Classification { probabilities, .. } => probabilities,
        HeadResult::Retrieval { fused, .. } => fused,
        HeadResult::Generation { logprobs, .. } => logprobs,
    }
}

/// The result JSON without its timings (which differ from run to run).
fn heads_and_inputs(json: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    v.as_object_mut().unwrap().remove("timing_ms");
    v
}

#[test]
fn a_c_program_gets_the_same_answers_as_rust_and_leaks_nothing() {
    let lib = library_dir();
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capi-smoke");
    std::fs::create_dir_all(&work).unwrap();
    let Some(exe) = compile(&work, &lib) else { return };
    let (png, wav) = (png(), wav());
    let (png_path, wav_path) = (work.join("image.png"), work.join("audio.wav"));
    std::fs::write(&png_path, &png).unwrap();
    std::fs::write(&wav_path, &wav).unwrap();

    let out = Command::new(&exe).arg(&png_path).arg(&wav_path).arg("4").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("SMOKE OK"),
        "smoke failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = parse(&stdout);
    for line in printed.lines.iter().filter(|l| l.starts_with("ASYNC") || l.starts_with("CANCEL")) {
        println!("{line}");
    }
    assert_eq!(printed.json.len(), 4, "one JSON per synchronous request");

    // The same requests in process, on the same model and backend.
    let model = Model::preset("omni-small", omnifuse_registry::open("cpu").unwrap()).unwrap();
    let params = Parameters { max_tokens: Some(4), ..Parameters::default() };
    let mut compared = 0;
    for (i, inputs) in requests(&png, &wav).iter().enumerate() {
        let label = format!("sync{i}");
        let rust: Response = model.run(inputs, &params).unwrap();
        let c_json = &printed.json[&label];
        let rust_json = serde_json::to_string_pretty(&rust).unwrap();
        assert_eq!(heads_and_inputs(c_json), heads_and_inputs(&rust_json), "{label}: the JSON of C and Rust differ");
        for (name, head) in &rust.heads {
            let want: Vec<u32> = head_vector(head).iter().map(|x| x.to_bits()).collect();
            let got = &printed.f32[&(label.clone(), name.clone())];
            assert_eq!(got, &want, "{label}: head {name}: the f32 output of C and Rust differ");
            compared += want.len();
        }
    }
    println!("{compared} f32 head outputs of 4 requests bit-identical between the C ABI and in-process Rust");

    run_under_valgrind(&exe, &png_path, &wav_path);
}

/// A model of the same architecture as omni-small, shrunk so it runs in seconds under
/// valgrind (which executes code some hundred times slower): the C ABI's memory handling is
/// what is checked there, not the model's arithmetic.
fn tiny_model(dir: &Path) {
    let mut c = Config::preset("omni-small").unwrap();
    c.model.name = "omni-tiny".into();
    c.model.width = 32;
    (c.text.embed, c.text.channels, c.text.widths) = (16, 16, vec![3]);
    (c.image.size, c.image.width, c.image.layers, c.image.heads) = (32, 16, 1, 2);
    (c.audio.width, c.audio.layers, c.audio.heads) = (16, 1, 2);
    (c.fusion.layers, c.fusion.heads) = (1, 2);
    for h in &mut c.heads {
        match &mut h.kind {
            HeadKind::Retrieval { dim } => *dim = 16,
            HeadKind::Generation { layers, heads, max_tokens, max_positions, .. } => {
                (*layers, *heads, *max_tokens, *max_positions) = (1, 2, 4, 16)
            }
            HeadKind::Classification { .. } => {}
        }
    }
    Model::save(dir, &c, &Weights::generate(&c).unwrap()).unwrap();
}

fn run_under_valgrind(exe: &Path, png: &Path, wav: &Path) {
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("SKIPPED valgrind: not installed (ci/install.sh installs it)");
        return;
    }
    let model = exe.with_file_name("omni-tiny");
    tiny_model(&model);
    // No OpenCL platform under valgrind: an empty vendor directory for the ICD loader, so the
    // device probe takes the "no platform" path. Otherwise PoCL compiles its kernels with
    // LLVM inside the run — minutes under valgrind, and LLVM's own allocations are not
    // omnifuse's to account for. (The OpenCL backend is tested on PoCL in its own step.)
    let no_icd = exe.with_file_name("no-opencl-vendors");
    std::fs::create_dir_all(&no_icd).unwrap();
    let out = Command::new("valgrind")
        .args(["--leak-check=full", "--errors-for-leak-kinds=definite", "--error-exitcode=1"])
        .arg("--fair-sched=yes")
        .arg(format!("--suppressions={}", Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/valgrind.supp").display()))
        .arg(exe)
        .arg(png)
        .arg(wav)
        .arg("1")
        .arg(&model)
        // Valgrind does not run AVX-512 code: cap the CPU backend at AVX2; and one pool
        // thread per backend, since valgrind runs one thread at a time anyway.
        .env("OMNIFUSE_CPU_ISA", "avx2")
        .env("RAYON_NUM_THREADS", "1")
        .env("OCL_ICD_VENDORS", &no_icd)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("SMOKE OK"),
        "under valgrind ({}):\n{stderr}\n{}",
        out.status,
        stdout.lines().filter(|l| l.starts_with("FAIL") || l.starts_with("SMOKE")).collect::<Vec<_>>().join("\n")
    );
    let errors = stderr.lines().find_map(|l| l.split_once("ERROR SUMMARY: ").map(|(_, r)| r.to_string()));
    let errors = errors.expect("valgrind printed no ERROR SUMMARY");
    assert!(errors.starts_with("0 errors"), "valgrind: {errors}\n{stderr}");
    let lost = stderr.lines().find_map(|l| l.split_once("definitely lost: ").map(|(_, r)| r.to_string()));
    let no_leaks = stderr.contains("All heap blocks were freed");
    assert!(
        no_leaks || lost.as_deref().is_some_and(|l| l.starts_with("0 bytes")),
        "valgrind: definitely lost {lost:?}"
    );
    let summary: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("lost:") || l.contains("reachable:") || l.contains("ERROR SUMMARY"))
        .collect();
    println!("valgrind (--leak-check=full):\n{}", summary.join("\n"));
}
