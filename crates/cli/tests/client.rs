//! `omnifuse client` end to end against a real `omnifuse serve` on a free port: health,
//! inference with text and an image file, a job submitted then waited for, keys from a file
//! or the environment, a wrong key and a refused connection (exit 2 with the reason), and a
//! short overload run in which every request must get exactly one answer (counts and
//! statuses only: nothing here depends on timing).

#![allow(clippy::panic, clippy::unwrap_used)] // test helpers fail by panicking

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

fn omnifuse() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_omnifuse"));
    c.env_remove("OMNIFUSE_API_KEYS").env_remove("OMNIFUSE_API_KEY");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A server with API key "test-key" and a queue of 8; its child process and address.
fn serve() -> (Child, String) {
    let mut child = omnifuse()
        .args(["serve", "--addr", "127.0.0.1:0", "--queue-capacity", "8"])
        .env("OMNIFUSE_API_KEYS", "test-key")
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut line = String::new();
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    stderr.read_line(&mut line).expect("a start-up line");
    // Keep reading the log, so the server's writes to it never fail.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in '{line}'"))
        .to_string();
    (child, format!("http://{addr}"))
}

fn client(endpoint: &str, args: &[&str]) -> Output {
    omnifuse().args(["client", "--endpoint", endpoint]).args(args).env("OMNIFUSE_API_KEY", "test-key").output().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omnifuse-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(20, 14, |x, y| image::Rgb([(x * 9) as u8, (y * 11) as u8, 100]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&text(&o.stdout))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", text(&o.stdout), text(&o.stderr)))
}

#[test]
fn client_commands_against_a_real_server() {
    let (mut server, url) = serve();
    let result = std::panic::catch_unwind(|| {
        // Ready once warmed up (exit 1 until then).
        let health = loop {
            let o = client(&url, &["health"]);
            if o.status.code() != Some(1) {
                break o;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(health.status.code(), Some(0), "{}", text(&health.stderr));
        assert!(text(&health.stdout).contains("ready true"));

        let image = scratch("sea.png");
        std::fs::write(&image, png()).unwrap();
        let o = client(&url, &["infer", "--task", "sentiment", "a calm sea", image.to_str().unwrap(), "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let v = json(&o);
        assert_eq!(v["inputs"][0]["modality"], "text");
        assert_eq!(v["inputs"][1]["modality"], "image", "an existing path is sent as its file");
        assert_eq!(v["heads"]["sentiment"]["kind"], "classification");
        let o = client(&url, &["infer", "--task", "sentiment", "a calm sea"]);
        assert!(text(&o.stdout).contains("sentiment:"), "{}", text(&o.stdout));

        let o = client(&url, &["submit", "--task", "retrieval", "hello"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let id = text(&o.stdout).trim().to_string();
        let o = client(&url, &["job", &id, "--wait", "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        assert_eq!(json(&o)["status"], "done");
        assert_eq!(json(&o)["result"]["heads"]["retrieval"]["kind"], "retrieval");

        // A key from a file; a wrong one is a 401 with the server's message, exit 2.
        let keys = scratch("key.txt");
        std::fs::write(&keys, "# the key\ntest-key\n").unwrap();
        let o = omnifuse()
            .args([
                "client",
                "--endpoint",
                &url,
                "--api-key-file",
                keys.to_str().unwrap(),
                "infer",
                "x",
                "--task",
                "sentiment",
            ])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let o = omnifuse()
            .args(["client", "--endpoint", &url, "infer", "x"])
            .env("OMNIFUSE_API_KEY", "wrong")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        assert!(text(&o.stderr).contains("HTTP 401 from POST /v1/infer"), "{}", text(&o.stderr));

        // The benchmark harness loads the server over the wire with the same keys.
        let bench = |key: &str| {
            omnifuse()
                .args(["bench", "--scenario", "single-stream", "--target", &url, "--duration", "0"])
                .args(["--min-queries", "4", "--queries", "4", "--mix", "text=1,image=1,audio=1", "--json", "-"])
                .env("OMNIFUSE_API_KEY", key)
                .output()
                .unwrap()
        };
        let o = bench("test-key");
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let r = json(&o);
        assert_eq!(r["backend"], url.as_str(), "{r}");
        assert!(r["queries"].as_u64().unwrap() >= 4 && r["failed"] == 0, "{r}");
        assert!(r["stages_ms"]["fuse"].as_f64().unwrap() > 0.0, "the server's stage times: {r}");
        let o = bench("wrong");
        assert_eq!(o.status.code(), Some(2));
        assert!(text(&o.stderr).contains("does not answer") && text(&o.stderr).contains("401"), "{}", text(&o.stderr));

        // Overload at 3x the peak against a queue of 8: refusals, yet one answer each.
        let pid = server.id().to_string();
        let args = ["overload", "--threads", "8", "--peak-seconds", "1", "--seconds", "2", "--after-requests", "5"];
        let o = client(&url, &[&args[..], &["--server-pid", &pid, "--json"]].concat());
        let r = json(&o);
        let over = &r["overload"];
        assert!(over["sent"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(over["answered"], over["sent"], "{r}");
        assert_eq!(over["server_answered"], over["answered"], "{r}");
        for zero in ["lost", "duplicated", "unmatched", "other_status", "refused_without_message", "not_sent"] {
            assert_eq!(over[zero], 0, "{zero}: {r}");
        }
        let statuses: Vec<&String> = over["by_status"].as_object().unwrap().keys().collect();
        assert!(statuses.iter().all(|s| ["200", "429", "503"].contains(&s.as_str())), "{r}");
        assert_eq!(r["after"]["ok"], 5, "{r}");
        assert!(r["rss"]["samples"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(o.status.code(), Some(0), "{r}");
    });
    let _ = server.kill();
    let _ = server.wait();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn a_refused_connection_and_bad_arguments_are_clear_errors() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let o = omnifuse().args(["client", "--endpoint", &free.to_string(), "infer", "x"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains(&format!("cannot connect to http://{free}")), "{err}");
    let o = omnifuse().args(["client", "--endpoint", "https://x", "health"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("https is not supported"), "{}", text(&o.stderr));
    let o = omnifuse().args(["client", "job", "../x", "--endpoint", &free.to_string()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("job id '../x'"), "{}", text(&o.stderr));
    let o = omnifuse().args(["client", "--help"]).output().unwrap();
    let help = text(&o.stdout);
    for word in ["infer", "submit", "job", "health", "overload", "--endpoint", "--api-key-file", "OMNIFUSE_API_KEY"] {
        assert!(help.contains(word), "client --help lacks {word}: {help}");
    }
}
