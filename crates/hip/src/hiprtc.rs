//! hiprtc, the HIP run-time compiler, loaded at run time.
//!
//! ROCm 6 and later ship it as `libhiprtc.so`; ROCm 5 carries the same entry points inside
//! `libamdhip64`. It is looked for in order: `$OMNIFUSE_HIPRTC` (a file, or a directory
//! holding `libhiprtc.so*`), `libhiprtc.so` (`.so.7`, `.so.6`) on the loader path and in
//! `/opt/rocm/lib`, then the runtime library's candidates ([`crate::api::candidates`]).
//! Compiling needs no device: a code object for any `--offload-arch` is produced on a
//! machine without a GPU.
//!
//! Compiles are serialised process-wide: two concurrent hiprtc compiles crash ROCm 5.2
//! (SIGSEGV), and the runtime compiles a module once per variant anyway.

use std::ffi::{CStr, CString, c_char, c_int};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use libloading::Library;

type Prog = *mut std::ffi::c_void;
type Status = c_int;

/// The loaded compiler and the entry points used.
pub struct Hiprtc {
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
    code_size: unsafe extern "C" fn(Prog, *mut usize) -> Status,
    code: unsafe extern "C" fn(Prog, *mut c_char) -> Status,
    destroy: unsafe extern "C" fn(*mut Prog) -> Status,
    error_string: unsafe extern "C" fn(Status) -> *const c_char,
    serial: Mutex<()>,
    _lib: Library,
}

/// What one compilation produced.
#[derive(Debug)]
pub struct Compiled {
    /// The code object (an ELF for the one `--offload-arch` given).
    pub image: Vec<u8>,
    /// The compiler's log (warnings), possibly empty.
    pub log: String,
}

/// Where hiprtc is looked for, in order.
pub fn candidates() -> Vec<PathBuf> {
    let names = ["libhiprtc.so", "libhiprtc.so.7", "libhiprtc.so.6"];
    let mut out = Vec::new();
    if let Some(v) = std::env::var_os("OMNIFUSE_HIPRTC").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(v);
        if p.is_dir() {
            out.extend(names.iter().map(|n| p.join(n)));
        } else {
            out.push(p);
        }
    }
    out.extend(names.iter().map(PathBuf::from));
    out.push(PathBuf::from("/opt/rocm/lib/libhiprtc.so"));
    out.extend(crate::api::candidates());
    out
}

static HIPRTC: OnceLock<Result<Hiprtc, String>> = OnceLock::new();

/// The process-wide hiprtc, loaded on first use; `Err` says what was tried.
pub fn get() -> Result<&'static Hiprtc, String> {
    HIPRTC.get_or_init(|| Hiprtc::load(&candidates())).as_ref().map_err(Clone::clone)
}

/// Destroys the program on every exit path.
struct Program<'a>(&'a Hiprtc, Prog);

impl Drop for Program<'_> {
    fn drop(&mut self) {
        // SAFETY: `self.1` came from hiprtcCreateProgram and is destroyed once.
        unsafe { (self.0.destroy)(&mut self.1) };
    }
}

impl Hiprtc {
    /// Load from the first of `candidates` that opens and has the hiprtc entry points (a
    /// ROCm 6 libamdhip64 opens but has none: the search goes on).
    pub fn load(candidates: &[PathBuf]) -> Result<Hiprtc, String> {
        let mut rest = candidates;
        let mut why = Vec::new();
        while !rest.is_empty() {
            let (lib, path) = match crate::api::open_first(rest, "hiprtc") {
                Ok(found) => found,
                Err(e) => {
                    why.push(e);
                    break;
                }
            };
            match Hiprtc::bind(lib, &path) {
                Ok(h) => return Ok(h),
                Err(e) => why.push(format!("{}: {e}", path.display())),
            }
            let at = rest.iter().position(|c| *c == path).map_or(rest.len(), |i| i + 1);
            rest = &rest[at..];
        }
        Err(if why.is_empty() { "HIP: hiprtc not found".to_string() } else { why.join("; ") })
    }

    fn bind(lib: Library, path: &std::path::Path) -> Result<Hiprtc, String> {
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the symbol is hiprtc's documented C entry point with the signature of
                // the field it is stored in; the pointer stays valid while `_lib` (moved into the
                // same struct) is loaded.
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }.map_err(|e| format!("{}: {e}", $name))?
            };
        }
        let version_fn: unsafe extern "C" fn(*mut c_int, *mut c_int) -> Status = sym!("hiprtcVersion");
        let (mut major, mut minor) = (0, 0);
        // SAFETY: both out-pointers are valid for one write.
        unsafe { version_fn(&mut major, &mut minor) };
        Ok(Hiprtc {
            path: path.display().to_string(),
            version: (major, minor),
            create: sym!("hiprtcCreateProgram"),
            compile: sym!("hiprtcCompileProgram"),
            log_size: sym!("hiprtcGetProgramLogSize"),
            log: sym!("hiprtcGetProgramLog"),
            code_size: sym!("hiprtcGetCodeSize"),
            code: sym!("hiprtcGetCode"),
            destroy: sym!("hiprtcDestroyProgram"),
            error_string: sym!("hiprtcGetErrorString"),
            serial: Mutex::new(()),
            _lib: lib,
        })
    }

    /// The library file that was loaded.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// hiprtc's (major, minor) version as it reports it.
    pub fn version(&self) -> (i32, i32) {
        self.version
    }

    fn status(&self, s: Status, what: &str) -> Result<(), String> {
        if s == 0 {
            return Ok(());
        }
        // SAFETY: hiprtcGetErrorString returns a static NUL-terminated string for any code.
        let p = unsafe { (self.error_string)(s) };
        let msg = if p.is_null() {
            "unknown error".into()
        } else {
            // SAFETY: non-null, static and NUL-terminated (see above).
            unsafe { CStr::from_ptr(p) }.to_string_lossy()
        };
        Err(format!("{what}: {msg} ({s})"))
    }

    /// Compile `source` (named `name` in messages) with in-memory `headers` (name, text) and
    /// `options` (which carry `--offload-arch=gfx...`). A failed compile returns the log.
    ///
    /// The arch must be one this hiprtc knows: ROCm 5.2's aborts the process on an unknown
    /// one (gfx942), so callers take it from the device or from [`crate::program::RTC_ARCHS`].
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
        // A poisoned lock only means another compile panicked; the compiler itself is fine.
        let _one_at_a_time = self.serial.lock().unwrap_or_else(|p| p.into_inner());
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
        self.status(s, "hiprtcCreateProgram")?;
        let prog = Program(self, prog);
        // SAFETY: `prog.1` is a live program; the option array holds `opts_p.len()` strings.
        let compiled = unsafe { (self.compile)(prog.1, opts_p.len() as c_int, opts_p.as_ptr()) };
        let log = self.read(prog.1, self.log_size, self.log)?;
        let log = String::from_utf8_lossy(log.split(|&b| b == 0).next().unwrap_or(&[])).trim().to_string();
        if compiled != 0 {
            return Err(format!("{name} did not compile with {}:\n{log}", options.join(" ")));
        }
        let image = self.read(prog.1, self.code_size, self.code)?;
        if image.is_empty() {
            return Err(format!("{name}: hiprtc produced an empty code object with {}", options.join(" ")));
        }
        Ok(Compiled { image, log })
    }

    fn read(
        &self,
        prog: Prog,
        size: unsafe extern "C" fn(Prog, *mut usize) -> Status,
        get: unsafe extern "C" fn(Prog, *mut c_char) -> Status,
    ) -> Result<Vec<u8>, String> {
        let mut n = 0usize;
        // SAFETY: `prog` is live and `n` valid for one write.
        self.status(unsafe { size(prog, &mut n) }, "hiprtc size query")?;
        let mut buf = vec![0u8; n.max(1)];
        // SAFETY: `buf` holds at least the `n` bytes hiprtc said it writes.
        self.status(unsafe { get(prog, buf.as_mut_ptr().cast()) }, "hiprtc read")?;
        buf.truncate(n);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_compiler_is_named() {
        let e = Hiprtc::load(&[PathBuf::from("/nonexistent/libhiprtc.so")]).err().unwrap_or_default();
        assert!(e.contains("hiprtc not found") && e.contains("/nonexistent/libhiprtc.so"), "{e}");
    }
}
