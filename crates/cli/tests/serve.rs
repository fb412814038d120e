//! `omnifuse serve` end to end: the start-up rules for API keys (exit 2 with a message), and a
//! real server on a free port answering health and inference over HTTP.

#![allow(clippy::panic)] // test helpers fail by panicking

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn omnifuse() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_omnifuse"));
    c.env_remove("OMNIFUSE_API_KEYS");
    c
}

#[test]
fn serve_refuses_to_start_without_keys_or_insecurely() {
    let cases: [(&[&str], &str); 4] = [
        (&["serve"], "no API keys"),
        (&["serve", "--no-auth", "--addr", "0.0.0.0:0"], "not a loopback address"),
        (&["serve", "--no-auth", "--precision", "fp8"], "unknown precision 'fp8'"),
        (&["serve", "--no-auth", "--max-batch", "0"], "max_batch"),
    ];
    for (args, want) in cases {
        let o = omnifuse().args(args).output().expect("runs");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: '{err}' lacks '{want}'");
    }
    let o = omnifuse().args(["serve", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in ["--addr", "--api-keys", "--no-auth", "--config", "--max-body-bytes", "--model-name", "--max-delay-ms"]
    {
        assert!(help.contains(flag), "serve --help lacks {flag}");
    }
}

fn http(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connects");
    s.write_all(request.as_bytes()).expect("writes");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("reads");
    out
}

#[test]
fn serve_answers_over_http() {
    let mut child = omnifuse()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("OMNIFUSE_API_KEYS", "test-key")
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut line = String::new();
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    stderr.read_line(&mut line).expect("a start-up line");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in '{line}'"))
        .to_string();
    // Ready once the warm-up request has run (503 until then).
    let ready = loop {
        let r = http(&addr, "GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if !r.starts_with("HTTP/1.1 503") {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let body = r#"{"inputs":[{"text":"a calm sea"}],"parameters":{"task_type":"sentiment"}}"#;
    let infer = http(
        &addr,
        &format!(
            "POST /v1/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer test-key\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    let denied = http(&addr, "GET /v2/models/omni HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    // SIGTERM: a graceful stop, logged, with exit status 0.
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    if !term.is_ok_and(|s| s.success()) {
        let _ = child.kill();
    }
    let status = child.wait().expect("the server exits");
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    assert!(status.success(), "{status}: {rest}");
    assert!(rest.contains("stopping") && rest.contains("stopped"), "{rest}");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(infer.starts_with("HTTP/1.1 200") && infer.contains("\"sentiment\""), "{infer}");
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
}
