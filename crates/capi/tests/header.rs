//! The checked-in header `include/omnifuse.h` must be exactly what cbindgen generates from
//! this crate: this test regenerates it and fails, naming the first differing line, when it
//! is out of date. `OMNIFUSE_BLESS=1` rewrites the file instead.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use std::path::Path;

fn generate() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap();
    let bindings = cbindgen::Builder::new().with_crate(dir).with_config(config).generate().unwrap();
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn the_checked_in_header_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../include/omnifuse.h");
    let fresh = generate();
    assert!(fresh.contains("omnifuse_engine_create") && fresh.contains("#define OMNIFUSE_STATUS_PANIC"));
    if std::env::var_os("OMNIFUSE_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).unwrap();
        println!("wrote {}", path.display());
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    if stored != fresh {
        let line = stored
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(stored.lines().count().min(fresh.lines().count()));
        panic!(
            "include/omnifuse.h is out of date with crates/capi (first difference at line {}: checked in {:?}, generated {:?}); \
             regenerate it with: OMNIFUSE_BLESS=1 cargo test --release -p omnifuse-capi --test header",
            line + 1,
            stored.lines().nth(line).unwrap_or("<end of file>"),
            fresh.lines().nth(line).unwrap_or("<end of file>")
        );
    }
}
