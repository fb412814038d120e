//! Building, caching, loading and launching one emulated module: a kernel source compiled
//! with a set of `-D` defines by the host C++ compiler into a shared object.
//!
//! Build. The source's `extern "C" __global__` kernels and `extern __shared__` arrays are
//! found in its preprocessed text (`c++ -E` against a stub header that keeps those keywords);
//! a wrapper file includes the source (with `extern __shared__` rewritten to `extern`) under
//! the host header [`HEADER`] and adds, per kernel `K`,
//! `extern "C" int emu_K(gx, gy, gz, bx, by, bz, shared_bytes, void** args)`, which unpacks
//! `args` (one pointer to each parameter's value, as `cuLaunchKernel` takes them) into the
//! kernel's parameter types and runs the grid, and `const char* emu_sig_K()`, the parameter
//! kinds the host checks its argument list against. Each dynamic shared array becomes an alias
//! of the header's shared buffer.
//!
//! Cache. The shared object is stored under `<omnifuse cache>/kernels/emu/<key>.so`, the key
//! being [`omnifuse_core::cache::key`] over (host header + source, `host-emu`, the compiler's
//! version line, the flags and defines), so editing the source, the header, the compiler or a
//! define misses. Loaded modules stay loaded for the life of the process (their worker threads
//! live inside them), one per key.

use std::collections::HashMap;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use libloading::Library;
use omnifuse_core::cache::{KernelCache, key};
use omnifuse_core::{Error, Result};

use crate::compiler::{self, Compiler};
use crate::scan;

/// The host stand-in for `kernels/include/omnifuse_gpu.h`, written under that name for the build.
pub const HEADER: &str = include_str!("../emu/omnifuse_gpu_emu.h");

/// Flags every module is compiled with (after `-std=c++20 -O1 -shared -fPIC`): hidden
/// symbols and no `STB_GNU_UNIQUE`, so two loaded modules never share a global.
const FLAGS: [&str; 8] =
    ["-std=c++20", "-O1", "-shared", "-fPIC", "-fvisibility=hidden", "-fno-gnu-unique", "-pthread", "-w"];

/// The stub header the scan preprocesses against: it leaves `__global__` and `__shared__`
/// in place and defines what a source may test in `#if`.
const SCAN_HEADER: &str = "#pragma once\n#define OF_CUDA 1\n#define OF_EMU 1\n#define OF_WARP 32\n";

/// The most dynamic shared memory one block may use (the header's buffer).
pub const MAX_DYNAMIC_SHARED: u32 = 228 * 1024;

/// The most threads one block may have.
pub const MAX_THREADS: u32 = 1024;

/// One kernel argument, by value: its kind (the code `emu_sig_K` uses: `p` pointer, `i` int,
/// `u` unsigned, `l` long long, `L` unsigned long long, `f` float) and its bits, stored in
/// 8 bytes little-endian (a 4-byte value is read from the start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    /// The kind code.
    pub kind: u8,
    /// The value's bits, zero-extended.
    pub bits: u64,
}

impl Param {
    /// A pointer (a host address standing in for a device address).
    pub fn ptr(p: u64) -> Param {
        Param { kind: b'p', bits: p }
    }
    /// An `int`.
    pub fn i32(v: i32) -> Param {
        Param { kind: b'i', bits: v as u32 as u64 }
    }
    /// An `unsigned`.
    pub fn u32(v: u32) -> Param {
        Param { kind: b'u', bits: v as u64 }
    }
    /// A `long long`.
    pub fn i64(v: i64) -> Param {
        Param { kind: b'l', bits: v as u64 }
    }
    /// An `unsigned long long`.
    pub fn u64(v: u64) -> Param {
        Param { kind: b'L', bits: v }
    }
    /// A `float`.
    pub fn f32(v: f32) -> Param {
        Param { kind: b'f', bits: v.to_bits() as u64 }
    }
}

/// Where a module's shared object came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Compiled now.
    Compiled,
    /// Found in the disk cache.
    Cached,
}

type LaunchFn = unsafe extern "C" fn(u32, u32, u32, u32, u32, u32, u32, *mut *mut c_void) -> i32;
type SigFn = unsafe extern "C" fn() -> *const std::ffi::c_char;

/// One kernel of a loaded module.
#[derive(Clone)]
struct Entry {
    launch: LaunchFn,
    signature: String,
}

/// A loaded module.
pub struct Module {
    label: String,
    path: PathBuf,
    origin: Origin,
    lib: Library,
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("label", &self.label).field("path", &self.path).finish()
    }
}

fn failed(label: &str, message: String) -> Error {
    Error::Backend { backend: "gpu-emu".into(), message: format!("{label}: {message}") }
}

/// Why a launch status code is not 0.
fn status_text(code: i32) -> &'static str {
    match code {
        1 => "the block has no threads or more than 1024",
        2 => "the block asks for more dynamic shared memory than the emulator provides",
        3 => "the emulator could not start the block's threads",
        4 => "a C++ exception escaped the kernel",
        5 => "a block wrote past the dynamic shared memory the launch gave it (shared_bytes too small)",
        _ => "unknown emulator status",
    }
}

impl Module {
    /// What was compiled (file name and defines), for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The shared object's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it was compiled now or found in the cache.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    fn entry(&self, symbol: &str) -> Result<Entry> {
        let mut map = self.entries.lock().map_err(|_| failed(&self.label, "symbol table poisoned".into()))?;
        if let Some(e) = map.get(symbol) {
            return Ok(e.clone());
        }
        let missing = |_| failed(&self.label, format!("no extern \"C\" __global__ kernel named {symbol}"));
        // SAFETY: the wrapper defines emu_<K> with exactly the LaunchFn signature and
        // emu_sig_<K> with the SigFn one; the library stays loaded while `self` lives, and the
        // copied function pointers are only used through `self`.
        let (launch, sig) = unsafe {
            let l = *self.lib.get::<LaunchFn>(format!("emu_{symbol}\0").as_bytes()).map_err(missing)?;
            let s = *self.lib.get::<SigFn>(format!("emu_sig_{symbol}\0").as_bytes()).map_err(missing)?;
            (l, s)
        };
        // SAFETY: emu_sig_<K> returns a pointer to a static NUL-terminated string.
        let signature = unsafe { std::ffi::CStr::from_ptr(sig()) }.to_string_lossy().into_owned();
        let e = Entry { launch, signature };
        map.insert(symbol.to_string(), e.clone());
        Ok(e)
    }

    /// The parameter kinds of kernel `symbol`, one code per parameter (see [`Param`]).
    pub fn signature(&self, symbol: &str) -> Result<String> {
        Ok(self.entry(symbol)?.signature)
    }

    /// Run kernel `symbol` over `grid` blocks of `block` threads with `shared_bytes` of
    /// dynamic shared memory per block, to completion. The arguments must match the kernel's
    /// parameters in number and kind (checked), and every pointer among them must address
    /// host memory large enough for what the kernel touches (not checked: that is what the
    /// conformance suite's guard bytes look for).
    pub fn launch(
        &self,
        symbol: &str,
        grid: [u32; 3],
        block: [u32; 3],
        shared_bytes: u32,
        args: &[Param],
    ) -> Result<()> {
        let e = self.entry(symbol)?;
        let got: String = args.iter().map(|p| p.kind as char).collect();
        if got != e.signature {
            return Err(failed(
                &self.label,
                format!(
                    "{symbol} takes parameters ({}) but the launch passes ({})",
                    describe(&e.signature),
                    describe(&got)
                ),
            ));
        }
        let threads = block.iter().map(|&b| b as u64).product::<u64>();
        if threads == 0 || threads > MAX_THREADS as u64 {
            return Err(failed(&self.label, format!("{symbol}: a block of {block:?} threads (1..=1024 allowed)")));
        }
        if shared_bytes > MAX_DYNAMIC_SHARED {
            return Err(failed(
                &self.label,
                format!("{symbol}: {shared_bytes} bytes of dynamic shared memory (at most {MAX_DYNAMIC_SHARED})"),
            ));
        }
        if grid.contains(&0) {
            return Ok(());
        }
        let mut slots: Vec<u64> = args.iter().map(|p| p.bits).collect();
        let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|s| s as *mut u64 as *mut c_void).collect();
        let [gx, gy, gz] = grid;
        let [bx, by, bz] = block;
        // SAFETY: `ptrs` holds one pointer per kernel parameter (the count and kinds were
        // checked against the kernel's signature), each to an 8-byte slot the wrapper reads
        // the parameter's bytes from; both vectors outlive the call, which runs the whole grid
        // before returning. What the kernel does with pointer arguments is the caller's
        // contract (see above).
        let code = unsafe { (e.launch)(gx, gy, gz, bx, by, bz, shared_bytes, ptrs.as_mut_ptr()) };
        if code != 0 {
            return Err(failed(&self.label, format!("launching {symbol}: {}", status_text(code))));
        }
        Ok(())
    }
}

/// Parameter kind codes spelled out.
fn describe(sig: &str) -> String {
    sig.chars()
        .map(|c| match c {
            'p' => "pointer",
            'i' => "int",
            'u' => "unsigned",
            'l' => "long long",
            'L' => "unsigned long long",
            'f' => "float",
            _ => "other",
        })
        .collect::<Vec<_>>()
        .join(", ")
}

type Slot = Arc<OnceLock<std::result::Result<Arc<Module>, String>>>;

fn registry() -> &'static Mutex<HashMap<String, Slot>> {
    static MODULES: OnceLock<Mutex<HashMap<String, Slot>>> = OnceLock::new();
    MODULES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The directory emulated modules are cached in: `emu` under the kernel cache.
pub fn cache_dir() -> PathBuf {
    KernelCache::default_dir().join("emu")
}

/// The module of `text` (named `file` in messages) compiled with `defines` (`-DNAME=value`),
/// built or read from the cache on first use and loaded once per process.
pub fn load(file: &str, text: &str, defines: &[String]) -> Result<Arc<Module>> {
    let cxx = compiler::get().map_err(|reason| Error::DeviceUnavailable { device: "gpu-emu".into(), reason })?;
    let options: Vec<&str> = FLAGS.iter().copied().chain(defines.iter().map(String::as_str)).collect();
    let k = key(&format!("{HEADER}\n{text}"), "host-emu", &cxx.version, &options.join(" "));
    let slot = {
        let mut map = registry().lock().map_err(|_| failed(file, "module registry poisoned".into()))?;
        map.entry(k.clone()).or_default().clone()
    };
    let label = if defines.is_empty() { file.to_string() } else { format!("{file} {}", defines.join(" ")) };
    slot.get_or_init(|| build_and_open(cxx, &label, text, defines, &k).map(Arc::new).map_err(|e| e.to_string()))
        .clone()
        .map_err(|m| Error::Backend { backend: "gpu-emu".into(), message: m })
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

fn build_and_open(cxx: &Compiler, label: &str, text: &str, defines: &[String], k: &str) -> Result<Module> {
    let dir = cache_dir();
    let so = dir.join(format!("{k}.so"));
    let origin = if so.is_file() {
        Origin::Cached
    } else {
        build(cxx, label, text, defines, &dir, &so)?;
        Origin::Compiled
    };
    // SAFETY: loading a shared object this crate compiled from the header above and a kernel
    // source: its initialisers only set up static storage (the worker pool starts on the
    // first launch).
    let lib = unsafe { Library::new(&so) }.map_err(|e| failed(label, format!("loading {}: {e}", so.display())))?;
    Ok(Module { label: label.to_string(), path: so, origin, lib, entries: Mutex::new(HashMap::new()) })
}

/// A fresh scratch directory under `dir` for one build.
fn scratch(dir: &Path) -> Result<PathBuf> {
    static N: AtomicU64 = AtomicU64::new(0);
    let d = dir.join(format!(".build-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(d.join("scan")).map_err(io(format!("creating {}", d.display())))?;
    std::fs::create_dir_all(d.join("inc")).map_err(io(format!("creating {}", d.display())))?;
    Ok(d)
}

fn run(cxx: &Compiler, label: &str, what: &str, args: &[&std::ffi::OsStr]) -> Result<Vec<u8>> {
    let out = Command::new(&cxx.program)
        .args(args)
        .output()
        .map_err(io(format!("running {} for {label}", cxx.program.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err.lines().take(40).collect::<Vec<_>>().join("\n");
        return Err(failed(label, format!("{what} failed ({}):\n{tail}", cxx.program.display())));
    }
    Ok(out.stdout)
}

/// The wrapper translation unit: the source, then one launcher and one signature per kernel,
/// then the dynamic shared arrays as aliases of the header's buffer.
pub fn wrapper(kernels: &[String], shared: &[scan::DynamicShared]) -> String {
    let mut w = String::from("#include \"kernel.cu\"\n\n");
    for d in shared {
        w.push_str(&format!(
            "extern __attribute__((visibility(\"hidden\"))) {ty} {name}[EMU_MAX_DYNAMIC_SHARED / sizeof({ty})] \
             __attribute__((alias(\"emu_dynamic_shared\")));\n",
            ty = d.ty,
            name = d.name
        ));
    }
    for k in kernels {
        w.push_str(&format!(
            "extern \"C\" __attribute__((visibility(\"default\"))) int emu_{k}(unsigned gx, unsigned gy, unsigned gz, \
             unsigned bx, unsigned by, unsigned bz, unsigned shared_bytes, void** args) {{\n    \
             return emu::launch(&{k}, gx, gy, gz, bx, by, bz, shared_bytes, args);\n}}\n\
             extern \"C\" __attribute__((visibility(\"default\"))) const char* emu_sig_{k}() {{ return emu::signature(&{k}); }}\n"
        ));
    }
    w
}

fn build(cxx: &Compiler, label: &str, text: &str, defines: &[String], dir: &Path, so: &Path) -> Result<()> {
    let work = scratch(dir)?;
    let result = build_in(cxx, label, text, defines, &work, so);
    // The scratch directory is only worth keeping to debug a failed build.
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn build_in(cxx: &Compiler, label: &str, text: &str, defines: &[String], work: &Path, so: &Path) -> Result<()> {
    let write = |p: PathBuf, s: &str| std::fs::write(&p, s).map_err(io(format!("writing {}", p.display())));
    write(work.join("scan/omnifuse_gpu.h"), SCAN_HEADER)?;
    write(work.join("inc/omnifuse_gpu.h"), HEADER)?;
    write(work.join("kernel.cu"), &scan::rewrite_dynamic_shared(text))?;
    write(work.join("original.cu"), text)?;
    let os = |s: &str| std::ffi::OsString::from(s);
    let defs: Vec<std::ffi::OsString> = defines.iter().map(|d| os(d)).collect();

    // The scan reads the unrewritten source, so `extern __shared__` is still there.
    let mut pre: Vec<std::ffi::OsString> = vec![os("-std=c++20"), os("-E"), os("-P"), os("-x"), os("c++")];
    pre.push(os("-I"));
    pre.push(work.join("scan").into_os_string());
    pre.extend(defs.iter().cloned());
    pre.push(work.join("original.cu").into_os_string());
    let pre_refs: Vec<&std::ffi::OsStr> = pre.iter().map(|s| s.as_os_str()).collect();
    let expanded = String::from_utf8_lossy(&run(cxx, label, "preprocessing", &pre_refs)?).into_owned();
    let kernels = scan::kernels(&expanded);
    if kernels.is_empty() {
        return Err(failed(label, "no extern \"C\" __global__ kernel found".into()));
    }
    write(work.join("wrapper.cpp"), &wrapper(&kernels, &scan::dynamic_shared(&expanded)))?;

    let tmp = work.join("module.so");
    let mut args: Vec<std::ffi::OsString> = FLAGS.iter().map(|f| os(f)).collect();
    args.push(os("-x"));
    args.push(os("c++"));
    args.push(os("-I"));
    args.push(work.join("inc").into_os_string());
    args.extend(defs);
    args.push(os("-o"));
    args.push(tmp.clone().into_os_string());
    args.push(work.join("wrapper.cpp").into_os_string());
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|s| s.as_os_str()).collect();
    run(cxx, label, "compiling", &refs)?;
    // Atomic publish: a concurrent build of the same key renames an identical file.
    std::fs::rename(&tmp, so).map_err(io(format!("storing {}", so.display())))
}
