//! Finding the host C++ compiler: `$OMNIFUSE_CXX`, else `$CXX`, else the first of `c++`,
//! `g++`, `clang++` on the path that answers `--version`. It must take `-std=c++20` (for
//! `std::barrier` and `std::atomic::wait`) and `_Float16` (GCC 12+, Clang 15+ on x86-64 and
//! AArch64).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// A C++ compiler that answered `--version`.
#[derive(Clone, Debug)]
pub struct Compiler {
    /// The program, as run.
    pub program: PathBuf,
    /// The first line of its `--version` output (part of the cache key).
    pub version: String,
}

fn probe(program: &str) -> Option<Compiler> {
    let out = Command::new(program).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.lines().next().unwrap_or("").trim().to_string();
    Some(Compiler { program: PathBuf::from(program), version })
}

fn find() -> Result<Compiler, String> {
    for var in ["OMNIFUSE_CXX", "CXX"] {
        if let Some(p) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            let p = p.to_string_lossy().into_owned();
            return probe(&p)
                .ok_or_else(|| format!("{var}={p} does not run as a C++ compiler (`{p} --version` failed)"));
        }
    }
    ["c++", "g++", "clang++"]
        .iter()
        .find_map(|p| probe(p))
        .ok_or_else(|| "no C++ compiler found (tried $OMNIFUSE_CXX, $CXX, c++, g++, clang++)".to_string())
}

/// The compiler, found once per process, or why there is none.
pub fn get() -> Result<&'static Compiler, String> {
    static FOUND: OnceLock<Result<Compiler, String>> = OnceLock::new();
    FOUND.get_or_init(find).as_ref().map_err(|e| e.clone())
}
