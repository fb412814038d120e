//! NVRTC, the CUDA run-time compiler, loaded from a library path we choose.
//!
//! cudarc's own NVRTC bindings search a fixed list of names on the loader path; the device
//! machines ship NVRTC 13 beside the driver while CI uses the 12.9 wheel, so the library is
//! found here in order: `$OMNIFUSE_NVRTC` (a file, or a directory holding `libnvrtc.so*`), the
//! wheel that `ci/install.sh` unpacks under the omnifuse cache, then the loader path
//! (`libnvrtc.so`, `.so.13`, `.so.12`). Only the ten entry points compiling needs are bound.

use std::ffi::{CStr, CString, c_char, c_int};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libloading::Library;

type Prog = *mut std::ffi::c_void;
type Status = c_int;

/// The loaded library and the entry points used.
pub struct Nvrtc {
    path: String,
    version: (i32, i32),
    create: unsafe extern "C" fn(
        *mut Prog,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> Status,
    compile: unsafe extern "C" fn(Prog, c_int, *const *const c_char) -> Status,
    log_size: unsafe extern "C" fn(Prog, *mut usize) -> Status,
    log: unsafe extern "C" fn(Prog, *mut c_char) -> Status,
    ptx_size: unsafe extern "C" fn(Prog, *mut usize) -> Status,
    ptx: unsafe extern "C" fn(Prog, *mut c_char) -> Status,
    cubin_size: unsafe extern "C" fn(Prog, *mut usize) -> Status,
    cubin: unsafe extern "C" fn(Prog, *mut c_char) -> Status,
    destroy: unsafe extern "C" fn(*mut Prog) -> Status,
    error_string: unsafe extern "C" fn(Status) -> *const c_char,
    _lib: Library,
}

/// What one compilation produced.
#[derive(Debug)]
pub struct Compiled {
    /// PTX text (for a `compute_XX` target) or a cubin (for `sm_XX`).
    pub image: Vec<u8>,
    /// True when `image` is a cubin.
    pub cubin: bool,
    /// The compiler's log (warnings), possibly empty.
    pub log: String,
}

/// Where NVRTC is looked for, in order.
pub fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(v) = std::env::var_os("OMNIFUSE_NVRTC").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(v);
        if p.is_dir() {
            for name in ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"] {
                out.push(p.join(name));
            }
        } else {
            out.push(p);
        }
    }
    out.push(wheel_dir().join("cuda_nvrtc/lib/libnvrtc.so.12"));
    for name in ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"] {
        out.push(PathBuf::from(name));
    }
    out
}

/// Where `ci/install.sh` unpacks the CUDA wheels (`nvidia/` of their site folder).
pub fn wheel_dir() -> PathBuf {
    omnifuse_core::cache::cache_root().join("cuda-toolkit/site/nvidia")
}

static NVRTC: OnceLock<Result<Nvrtc, String>> = OnceLock::new();

/// The process-wide NVRTC, loaded on first use; `Err` says what was tried.
pub fn get() -> Result<&'static Nvrtc, String> {
    NVRTC.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Nvrtc, String> {
    let mut tried = Vec::new();
    for c in candidates() {
        if c.components().count() > 1 && !c.exists() {
            tried.push(format!("{} (absent)", c.display()));
            continue;
        }
        // SAFETY: loading NVRTC runs its initialisers, which have no preconditions.
        match unsafe { Library::new(&c) } {
            Ok(lib) => return bind(lib, &c).map_err(|e| format!("{}: {e}", c.display())),
            Err(e) => tried.push(format!("{} ({e})", c.display())),
        }
    }
    Err(format!("no NVRTC library found; tried {}. Set OMNIFUSE_NVRTC to libnvrtc's path", tried.join(", ")))
}

fn bind(lib: Library, path: &Path) -> Result<Nvrtc, String> {
    macro_rules! sym {
        ($name:literal) => {
            // SAFETY: the symbol is NVRTC's documented C entry point of this signature; the
            // pointer stays valid while `_lib` (moved into the same struct) is loaded.
            *unsafe { lib.get(concat!($name, "\0").as_bytes()) }.map_err(|e| format!("{}: {e}", $name))?
        };
    }
    let version_fn: unsafe extern "C" fn(*mut c_int, *mut c_int) -> Status = sym!("nvrtcVersion");
    let (mut major, mut minor) = (0, 0);
    // SAFETY: both out-pointers are valid for one write.
    unsafe { version_fn(&mut major, &mut minor) };
    Ok(Nvrtc {
        path: path.display().to_string(),
        version: (major, minor),
        create: sym!("nvrtcCreateProgram"),
        compile: sym!("nvrtcCompileProgram"),
        log_size: sym!("nvrtcGetProgramLogSize"),
        log: sym!("nvrtcGetProgramLog"),
        ptx_size: sym!("nvrtcGetPTXSize"),
        ptx: sym!("nvrtcGetPTX"),
        cubin_size: sym!("nvrtcGetCUBINSize"),
        cubin: sym!("nvrtcGetCUBIN"),
        destroy: sym!("nvrtcDestroyProgram"),
        error_string: sym!("nvrtcGetErrorString"),
        _lib: lib,
    })
}

/// Destroys the program on every exit path.
struct Program<'a>(&'a Nvrtc, Prog);

impl Drop for Program<'_> {
    fn drop(&mut self) {
        // SAFETY: `self.1` came from nvrtcCreateProgram and is destroyed once.
        unsafe { (self.0.destroy)(&mut self.1) };
    }
}

impl Nvrtc {
    /// The library file that was loaded.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// NVRTC's (major, minor) version.
    pub fn version(&self) -> (i32, i32) {
        self.version
    }

    fn status(&self, s: Status, what: &str) -> Result<(), String> {
        if s == 0 {
            return Ok(());
        }
        // SAFETY: nvrtcGetErrorString returns a static NUL-terminated string for any code.
        let msg = unsafe { CStr::from_ptr((self.error_string)(s)) }.to_string_lossy();
        Err(format!("{what}: {msg} ({s})"))
    }

    /// Compile `source` (named `name` in messages) with in-memory `headers` (name, text) and
    /// `options`. The target comes from the options: `--gpu-architecture=sm_XX` gives a
    /// cubin, `compute_XX` gives PTX. A failed compile returns the log.
    pub fn compile(
        &self,
        source: &str,
        name: &str,
        headers: &[(&str, &str)],
        options: &[String],
    ) -> Result<Compiled, String> {
        let cstr = |s: &str| CString::new(s).map_err(|_| format!("{name}: a NUL byte in the source or options"));
        let src = cstr(source)?;
        let cname = cstr(name)?;
        let hdr_text = headers.iter().map(|h| cstr(h.1)).collect::<Result<Vec<_>, _>>()?;
        let hdr_name = headers.iter().map(|h| cstr(h.0)).collect::<Result<Vec<_>, _>>()?;
        let hdr_text_p: Vec<*const c_char> = hdr_text.iter().map(|c| c.as_ptr()).collect();
        let hdr_name_p: Vec<*const c_char> = hdr_name.iter().map(|c| c.as_ptr()).collect();
        let opts = options.iter().map(|o| cstr(o)).collect::<Result<Vec<_>, _>>()?;
        let opts_p: Vec<*const c_char> = opts.iter().map(|c| c.as_ptr()).collect();
        let mut prog: Prog = std::ptr::null_mut();
        // SAFETY: every pointer refers to a live NUL-terminated string; the arrays hold
        // `headers.len()` entries each.
        let s = unsafe {
            (self.create)(
                &mut prog,
                src.as_ptr(),
                cname.as_ptr(),
                headers.len() as c_int,
                hdr_text_p.as_ptr(),
                hdr_name_p.as_ptr(),
            )
        };
        self.status(s, "nvrtcCreateProgram")?;
        let prog = Program(self, prog);
        // SAFETY: `prog.1` is a live program; the option array holds `opts_p.len()` strings.
        let compiled = unsafe { (self.compile)(prog.1, opts_p.len() as c_int, opts_p.as_ptr()) };
        let log = self.read(prog.1, self.log_size, self.log)?;
        let log = String::from_utf8_lossy(log.split(|&b| b == 0).next().unwrap_or(&[])).trim().to_string();
        if compiled != 0 {
            return Err(format!("{name} did not compile with {}:\n{log}", options.join(" ")));
        }
        let cubin = options.iter().any(|o| o.starts_with("--gpu-architecture=sm_"));
        let image = if cubin {
            self.read(prog.1, self.cubin_size, self.cubin)?
        } else {
            let mut ptx = self.read(prog.1, self.ptx_size, self.ptx)?;
            while ptx.last() == Some(&0) {
                ptx.pop();
            }
            ptx
        };
        Ok(Compiled { image, cubin, log })
    }

    fn read(
        &self,
        prog: Prog,
        size: unsafe extern "C" fn(Prog, *mut usize) -> Status,
        get: unsafe extern "C" fn(Prog, *mut c_char) -> Status,
    ) -> Result<Vec<u8>, String> {
        let mut n = 0usize;
        // SAFETY: `prog` is live and `n` valid for one write.
        self.status(unsafe { size(prog, &mut n) }, "nvrtc size query")?;
        let mut buf = vec![0u8; n.max(1)];
        // SAFETY: `buf` holds the `n` bytes NVRTC said it writes.
        self.status(unsafe { get(prog, buf.as_mut_ptr().cast()) }, "nvrtc read")?;
        buf.truncate(n);
        Ok(buf)
    }
}

/// The `ptxas` the compile gate assembles with: `$OMNIFUSE_PTXAS`, the wheel's, else the one
/// on `PATH`; `None` when there is none.
pub fn ptxas() -> Option<PathBuf> {
    if let Some(v) = std::env::var_os("OMNIFUSE_PTXAS").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(v));
    }
    let wheel = wheel_dir().join("cuda_nvcc/bin/ptxas");
    if wheel.is_file() {
        return Some(wheel);
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join("ptxas")).find(|p| p.is_file())
}
