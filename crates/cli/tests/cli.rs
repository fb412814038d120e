//! End-to-end tests of the `omnifuse` binary: each command's output and exit code, and a
//! clear error (exit 2, no panic) for each kind of bad input.

#![allow(clippy::panic)] // test helpers fail by panicking

use std::process::{Command, Output};

fn omnifuse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_omnifuse")).args(args).output().expect("run omnifuse")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

#[test]
fn help_names_every_command() {
    let o = omnifuse(&["--help"]);
    assert!(o.status.success());
    let s = stdout(&o);
    for cmd in ["info", "kernels", "check"] {
        assert!(s.contains(cmd), "--help lacks {cmd}: {s}");
    }
}

#[test]
fn info_reports_devices_and_why_absent_ones_are_absent() {
    let o = omnifuse(&["info", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    let devices = v["devices"].as_array().expect("devices");
    let cpu = devices.iter().find(|d| d["name"] == "cpu").expect("cpu device");
    assert_eq!(cpu["available"], true);
    assert!(cpu["peak_gflops_f32"].as_f64().unwrap_or(0.0) > 0.0, "{cpu}");
    // With no GPU here, CUDA and HIP each have one entry saying what is missing.
    for family in ["cuda", "hip"] {
        let e = devices
            .iter()
            .find(|d| d["name"].as_str().is_some_and(|n| n.starts_with(family)))
            .unwrap_or_else(|| panic!("no {family} entry: {v}"));
        if e["available"] == false {
            assert!(!e["reason"].as_str().unwrap_or("").is_empty(), "{e}");
        }
    }
    assert!(v["cpu_features"].is_array());
}

#[test]
fn kernels_json_has_the_documented_keys_and_a_peer() {
    let o = omnifuse(&[
        "kernels", "--op", "gemm", "--dtype", "f32", "--m", "96", "--n", "80", "--k", "64", "--reps", "5", "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    for key in ["op", "backend", "dtype", "shape", "median_ms", "gflops", "peak_fraction", "peer", "ratio"] {
        assert!(!v[key].is_null(), "missing {key}: {v}");
    }
    assert_eq!(v["shape"], serde_json::json!([96, 80, 64]));
    for key in ["name", "median_ms", "gflops"] {
        assert!(!v["peer"][key].is_null(), "missing peer.{key}: {v}");
    }
    assert!(v["ratio"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(v["max_rel_diff"].as_f64().unwrap_or(1.0) < 1e-4, "{v}");
}

#[test]
fn kernels_runs_every_gemm_dtype_against_its_peer() {
    for dtype in ["f16", "bf16", "i8"] {
        let o =
            omnifuse(&["kernels", "--dtype", dtype, "--m", "64", "--n", "48", "--k", "40", "--reps", "3", "--json"]);
        assert!(o.status.success(), "{dtype}: {}", stderr(&o));
        assert_eq!(json(&o)["dtype"], dtype);
    }
}

#[test]
fn kernels_attention_runs_fused_next_to_unfused() {
    for mask in ["full", "intra", "pairs", "causal"] {
        let o = omnifuse(&[
            "kernels",
            "--op",
            "attention",
            "--seqlens",
            "40,17",
            "--heads",
            "2",
            "--head-dim",
            "16",
            "--mask",
            mask,
            "--bias",
            "--reps",
            "2",
            "--json",
        ]);
        assert!(o.status.success(), "{mask}: {}", stderr(&o));
        let v = json(&o);
        for key in ["op", "backend", "dtype", "shape", "median_ms", "tflops", "peer", "ratio"] {
            assert!(!v[key].is_null(), "missing {key}: {v}");
        }
        assert_eq!(v["shape"], serde_json::json!([40, 17]));
        assert!(v["max_rel_diff"].as_f64().unwrap_or(1.0) < 1e-4, "{v}");
    }
}

#[test]
fn bad_input_is_a_clear_error_with_exit_code_2() {
    let cases: [(&[&str], &str); 8] = [
        (&["kernels", "--op", "attention", "--mask", "diagonal"], "unknown mask 'diagonal'"),
        (&["kernels", "--op", "attention", "--seqlens", "0"], "positive lengths"),
        (&["kernels", "--dtype", "f64"], "unknown dtype 'f64'"),
        (&["kernels", "--m", "0"], "must be positive"),
        (&["kernels", "--backend", "cuda:0", "--m", "8", "--n", "8", "--k", "8"], "cuda:0"),
        (&["kernels", "--backend", "tpu"], "unknown device 'tpu'"),
        (&["check", "--op", "conv3d"], "unknown op 'conv3d'"),
        (&["kernels", "--dtype", "i32"], "gemm runs on"),
    ];
    for (args, want) in cases {
        let o = omnifuse(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: stderr lacks '{want}': {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?} panicked");
    }
}

#[test]
fn check_qualifies_a_device_and_reports_json() {
    let o = omnifuse(&["check", "--op", "layernorm", "--cases", "24", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 3, "layernorm has f32, f16 and bf16: {v}");
    assert!(results.iter().all(|r| r["status"] == "pass" && r["cases"] == 24), "{v}");
    assert_eq!(v["failed"], 0);
}

#[test]
fn check_table_ends_with_a_count() {
    let o = omnifuse(&["check", "--op", "slice", "--cases", "8"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("5 passed, 0 failed, 0 skipped"), "{}", stdout(&o));
}

#[test]
fn quantize_calibrates_static_steps_and_refuses_what_needs_calibration() {
    let dir = std::env::temp_dir().join(format!("omnifuse-cli-calib-{}", std::process::id()));
    let out = dir.join("q");
    let o = omnifuse(&["quantize", "--out", out.to_str().unwrap(), "--smooth", "0.5"]);
    assert!(!o.status.success() && stderr(&o).contains("--calib builtin"), "{}", stderr(&o));
    let o = omnifuse(&[
        "quantize",
        "--out",
        out.to_str().unwrap(),
        "--calib",
        "builtin",
        "--method",
        "percentile",
        "--percentile",
        "0",
    ]);
    assert!(!o.status.success() && stderr(&o).contains("(0, 100]"), "{}", stderr(&o));
    let o = omnifuse(&[
        "quantize",
        "--out",
        out.to_str().unwrap(),
        "--calib",
        "builtin",
        "--calib-requests",
        "4",
        "--method",
        "entropy",
        "--smooth",
        "0.5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("static per-tensor steps (entropy)"), "{}", stdout(&o));
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("static-entropy") && config.contains("smooth"), "{config}");
    let o = omnifuse(&["run", "--model", out.to_str().unwrap(), "--task", "retrieval", "--text", "a heron"]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).ok();
}
