//! The HIP runtime (`libamdhip64`), loaded at run time with `libloading`.
//!
//! Nothing links against HIP at build time, so the crate builds and the binary starts where
//! no ROCm is installed. The library is looked for in order: `$OMNIFUSE_HIP` (a file, or a
//! directory holding `libamdhip64.so*`), the loader path (`libamdhip64.so`, `.so.7`, `.so.6`,
//! `.so.5`), then `/opt/rocm/lib`. Only the entry points the backend calls are bound; every
//! call returns the runtime's status, turned into a message naming the call and the error.

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libloading::Library;

/// `hipError_t`.
pub type Status = c_int;
/// `hipStream_t`.
pub type Stream = *mut c_void;
/// `hipModule_t`.
pub type Module = *mut c_void;
/// `hipFunction_t`.
pub type Function = *mut c_void;

/// `hipDeviceAttribute_t` values used here. The CUDA-compatible block of the enum has kept
/// these positions from ROCm 5.0 through 6.x (only entries before `MaxBlockDimX` moved).
pub mod attr {
    /// `hipDeviceAttributeMaxThreadsPerBlock`.
    pub const MAX_THREADS_PER_BLOCK: i32 = 56;
    /// `hipDeviceAttributeMultiprocessorCount` (compute units).
    pub const MULTIPROCESSOR_COUNT: i32 = 63;
    /// `hipDeviceAttributeMaxSharedMemoryPerBlock` (LDS bytes per workgroup).
    pub const MAX_SHARED_MEMORY_PER_BLOCK: i32 = 74;
    /// `hipDeviceAttributeWarpSize` (the wavefront width: 64 on CDNA, 32 on RDNA).
    pub const WARP_SIZE: i32 = 87;
}

/// `hipStreamNonBlocking`.
pub const STREAM_NON_BLOCKING: c_uint = 1;
/// `hipErrorNoDevice`.
pub const ERROR_NO_DEVICE: Status = 100;

/// The loaded runtime and the entry points used.
pub struct Runtime {
    path: String,
    init: unsafe extern "C" fn(c_uint) -> Status,
    device_count: unsafe extern "C" fn(*mut c_int) -> Status,
    attribute: unsafe extern "C" fn(*mut c_int, c_int, c_int) -> Status,
    device_name: unsafe extern "C" fn(*mut c_char, c_int, c_int) -> Status,
    total_mem: unsafe extern "C" fn(*mut usize, c_int) -> Status,
    properties: unsafe extern "C" fn(*mut c_void, c_int) -> Status,
    set_device: unsafe extern "C" fn(c_int) -> Status,
    stream_create: unsafe extern "C" fn(*mut Stream, c_uint) -> Status,
    stream_sync: unsafe extern "C" fn(Stream) -> Status,
    malloc: unsafe extern "C" fn(*mut *mut c_void, usize) -> Status,
    free: unsafe extern "C" fn(*mut c_void) -> Status,
    htod: unsafe extern "C" fn(*mut c_void, *const c_void, usize, Stream) -> Status,
    dtoh: unsafe extern "C" fn(*mut c_void, *mut c_void, usize, Stream) -> Status,
    dtod: unsafe extern "C" fn(*mut c_void, *mut c_void, usize, Stream) -> Status,
    module_load: unsafe extern "C" fn(*mut Module, *const c_void) -> Status,
    module_function: unsafe extern "C" fn(*mut Function, Module, *const c_char) -> Status,
    #[allow(clippy::type_complexity)]
    launch: unsafe extern "C" fn(
        Function,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        Stream,
        *mut *mut c_void,
        *mut *mut c_void,
    ) -> Status,
    error_name: unsafe extern "C" fn(Status) -> *const c_char,
    runtime_version: unsafe extern "C" fn(*mut c_int) -> Status,
    _lib: Library,
}

/// Where libamdhip64 is looked for, in order.
pub fn candidates() -> Vec<PathBuf> {
    let names = ["libamdhip64.so", "libamdhip64.so.7", "libamdhip64.so.6", "libamdhip64.so.5"];
    let mut out = Vec::new();
    if let Some(v) = std::env::var_os("OMNIFUSE_HIP").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(v);
        if p.is_dir() {
            out.extend(names.iter().map(|n| p.join(n)));
        } else {
            out.push(p);
        }
    }
    out.extend(names.iter().map(PathBuf::from));
    out.push(PathBuf::from("/opt/rocm/lib/libamdhip64.so"));
    out
}

/// Open the first loadable library among `candidates` (a bare name goes through the loader
/// path; a path that does not exist is skipped). `Err` lists what was tried.
pub fn open_first(candidates: &[PathBuf], what: &str) -> Result<(Library, PathBuf), String> {
    let mut tried = Vec::new();
    for c in candidates {
        if c.components().count() > 1 && !c.exists() {
            tried.push(format!("{} (absent)", c.display()));
            continue;
        }
        // SAFETY: loading a shared library runs its initialisers; the HIP runtime's have no
        // preconditions (they find no device and defer the error to the first call).
        match unsafe { Library::new(c) } {
            Ok(lib) => return Ok((lib, c.clone())),
            Err(e) => tried.push(format!("{} ({e})", c.display())),
        }
    }
    Err(format!("HIP: {what} not found; tried {}", tried.join(", ")))
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The process-wide runtime, loaded on first use; `Err` says what was tried.
pub fn runtime() -> Result<&'static Runtime, String> {
    RUNTIME.get_or_init(|| Runtime::load(&candidates())).as_ref().map_err(Clone::clone)
}

impl Runtime {
    /// Load the runtime from the first of `candidates` that opens and binds.
    pub fn load(candidates: &[PathBuf]) -> Result<Runtime, String> {
        let (lib, path) = open_first(candidates, "libamdhip64")?;
        Runtime::bind(lib, &path).map_err(|e| format!("HIP: {}: {e}", path.display()))
    }

    fn bind(lib: Library, path: &Path) -> Result<Runtime, String> {
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the symbol is the HIP runtime's documented C entry point with the
                // signature of the field it is stored in; the pointer stays valid while `_lib`
                // (moved into the same struct) is loaded.
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }.map_err(|e| format!("{}: {e}", $name))?
            };
        }
        // ROCm 6 renamed the properties call whose struct it fills; the unversioned symbol
        // fills the older layout. Either works: only the arch string is read, found by content.
        // SAFETY: as in `sym!`.
        let properties = match unsafe { lib.get(b"hipGetDevicePropertiesR0600\0") } {
            Ok(f) => *f,
            Err(_) => sym!("hipGetDeviceProperties"),
        };
        Ok(Runtime {
            path: path.display().to_string(),
            init: sym!("hipInit"),
            device_count: sym!("hipGetDeviceCount"),
            attribute: sym!("hipDeviceGetAttribute"),
            device_name: sym!("hipDeviceGetName"),
            total_mem: sym!("hipDeviceTotalMem"),
            properties,
            set_device: sym!("hipSetDevice"),
            stream_create: sym!("hipStreamCreateWithFlags"),
            stream_sync: sym!("hipStreamSynchronize"),
            malloc: sym!("hipMalloc"),
            free: sym!("hipFree"),
            htod: sym!("hipMemcpyHtoDAsync"),
            dtoh: sym!("hipMemcpyDtoHAsync"),
            dtod: sym!("hipMemcpyDtoDAsync"),
            module_load: sym!("hipModuleLoadData"),
            module_function: sym!("hipModuleGetFunction"),
            launch: sym!("hipModuleLaunchKernel"),
            error_name: sym!("hipGetErrorName"),
            runtime_version: sym!("hipRuntimeGetVersion"),
            _lib: lib,
        })
    }

    /// The library that was loaded (as it was named to the loader).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The name of a status code (`hipErrorOutOfMemory`).
    pub fn error_name(&self, s: Status) -> String {
        // SAFETY: hipGetErrorName returns a static NUL-terminated string for any code.
        let p = unsafe { (self.error_name)(s) };
        if p.is_null() {
            return format!("error {s}");
        }
        // SAFETY: non-null, static and NUL-terminated (see above).
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// `Ok` for `hipSuccess`, else a message naming `what` and the error.
    pub fn check(&self, s: Status, what: &str) -> Result<(), String> {
        if s == 0 { Ok(()) } else { Err(format!("{what} failed: {} ({s})", self.error_name(s))) }
    }

    /// `hipInit(0)`; the raw status (callers decide what "no device" means).
    pub fn init(&self) -> Status {
        // SAFETY: hipInit takes flags by value and may be called any number of times.
        unsafe { (self.init)(0) }
    }

    /// `hipGetDeviceCount`: the status and the count.
    pub fn device_count(&self) -> (Status, i32) {
        let mut n = 0;
        // SAFETY: `n` is valid for one write.
        let s = unsafe { (self.device_count)(&mut n) };
        (s, n)
    }

    /// `hipRuntimeGetVersion` (e.g. 50221153 for 5.2.21153), 0 when it fails.
    pub fn version(&self) -> i32 {
        let mut v = 0;
        // SAFETY: `v` is valid for one write.
        let s = unsafe { (self.runtime_version)(&mut v) };
        if s == 0 { v } else { 0 }
    }

    /// One integer attribute of device `dev` (see [`attr`]).
    pub fn attribute(&self, a: i32, dev: i32) -> Result<i32, String> {
        let mut v = 0;
        // SAFETY: `v` is valid for one write; a bad attribute or device is an error status.
        self.check(unsafe { (self.attribute)(&mut v, a, dev) }, "hipDeviceGetAttribute")?;
        Ok(v)
    }

    /// The marketing name of device `dev`.
    pub fn device_name(&self, dev: i32) -> Result<String, String> {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer holds the 256 bytes announced, and the runtime NUL-terminates.
        self.check(unsafe { (self.device_name)(buf.as_mut_ptr().cast(), 256, dev) }, "hipDeviceGetName")?;
        Ok(c_string(&buf))
    }

    /// Global memory of device `dev` in bytes.
    pub fn total_mem(&self, dev: i32) -> Result<u64, String> {
        let mut v = 0usize;
        // SAFETY: `v` is valid for one write.
        self.check(unsafe { (self.total_mem)(&mut v, dev) }, "hipDeviceTotalMem")?;
        Ok(v as u64)
    }

    /// The device's `gcnArchName` (`gfx90a:sramecc+:xnack-`). The properties struct changed
    /// layout between ROCm 5 and 6, so it is filled into a buffer larger than either and the
    /// arch string is found by its form rather than read at a fixed offset.
    pub fn arch_name(&self, dev: i32) -> Result<String, String> {
        // 16 KiB, 8-byte aligned: far more than any known layout (≈1.5 KiB).
        let mut buf = vec![0u64; 2048];
        // SAFETY: the buffer is larger than the struct of any runtime version and aligned for it.
        self.check(unsafe { (self.properties)(buf.as_mut_ptr().cast(), dev) }, "hipGetDeviceProperties")?;
        let bytes: &[u8] = bytemuck::cast_slice(&buf);
        find_arch(bytes).ok_or_else(|| "hipGetDeviceProperties: no gcnArchName (gfx...) in the properties".to_string())
    }

    /// Make device `dev` current on the calling thread.
    pub fn set_device(&self, dev: i32) -> Result<(), String> {
        // SAFETY: a plain call with a device number; a bad one is an error status.
        self.check(unsafe { (self.set_device)(dev) }, "hipSetDevice")
    }

    /// A non-blocking stream on the current device.
    pub fn stream_create(&self) -> Result<Stream, String> {
        let mut s: Stream = std::ptr::null_mut();
        // SAFETY: `s` is valid for one write.
        self.check(unsafe { (self.stream_create)(&mut s, STREAM_NON_BLOCKING) }, "hipStreamCreateWithFlags")?;
        Ok(s)
    }

    /// Wait for everything enqueued on `stream`.
    ///
    /// # Safety
    /// `stream` must be a live stream of this runtime.
    pub unsafe fn stream_sync(&self, stream: Stream) -> Result<(), String> {
        // SAFETY: the caller guarantees the stream is live.
        self.check(unsafe { (self.stream_sync)(stream) }, "hipStreamSynchronize")
    }

    /// Allocate `bytes` on the current device.
    pub fn malloc(&self, bytes: usize) -> Result<u64, Status> {
        let mut p: *mut c_void = std::ptr::null_mut();
        // SAFETY: `p` is valid for one write.
        let s = unsafe { (self.malloc)(&mut p, bytes) };
        if s == 0 { Ok(p as u64) } else { Err(s) }
    }

    /// Free an allocation of [`Runtime::malloc`].
    ///
    /// # Safety
    /// `ptr` must come from `malloc` and not have been freed.
    pub unsafe fn free(&self, ptr: u64) -> Status {
        // SAFETY: the caller guarantees `ptr` is a live allocation.
        unsafe { (self.free)(ptr as *mut c_void) }
    }

    /// Enqueue a host-to-device copy of `src` to `dst`.
    ///
    /// # Safety
    /// `dst` must hold `src.len()` bytes; `src` must stay valid until the stream has passed
    /// the copy (the caller synchronises).
    pub unsafe fn htod(&self, dst: u64, src: &[u8], stream: Stream) -> Result<(), String> {
        // SAFETY: guaranteed by the caller.
        let s = unsafe { (self.htod)(dst as *mut c_void, src.as_ptr().cast(), src.len(), stream) };
        self.check(s, "hipMemcpyHtoDAsync")
    }

    /// Enqueue a device-to-host copy into `dst`.
    ///
    /// # Safety
    /// `src` must hold `dst.len()` bytes; `dst` must not be read before the stream is
    /// synchronised.
    pub unsafe fn dtoh(&self, dst: &mut [u8], src: u64, stream: Stream) -> Result<(), String> {
        // SAFETY: guaranteed by the caller.
        let s = unsafe { (self.dtoh)(dst.as_mut_ptr().cast(), src as *mut c_void, dst.len(), stream) };
        self.check(s, "hipMemcpyDtoHAsync")
    }

    /// Enqueue a device-to-device copy of `bytes`.
    ///
    /// # Safety
    /// Both addresses must hold `bytes` bytes on the stream's device.
    pub unsafe fn dtod(&self, dst: u64, src: u64, bytes: usize, stream: Stream) -> Result<(), String> {
        // SAFETY: guaranteed by the caller.
        let s = unsafe { (self.dtod)(dst as *mut c_void, src as *mut c_void, bytes, stream) };
        self.check(s, "hipMemcpyDtoDAsync")
    }

    /// Load a code object (an ELF for the current device's arch) as a module.
    pub fn module_load(&self, image: &[u8]) -> Result<Module, String> {
        let mut m: Module = std::ptr::null_mut();
        // SAFETY: `image` is a complete code object kept alive across the call (the runtime
        // copies it); `m` is valid for one write.
        self.check(unsafe { (self.module_load)(&mut m, image.as_ptr().cast()) }, "hipModuleLoadData")?;
        Ok(m)
    }

    /// A kernel of a loaded module.
    ///
    /// # Safety
    /// `module` must be a live module of this runtime.
    pub unsafe fn module_function(&self, module: Module, symbol: &CStr) -> Result<Function, String> {
        let mut f: Function = std::ptr::null_mut();
        // SAFETY: the module is live (caller), the name NUL-terminated, `f` valid for a write.
        let s = unsafe { (self.module_function)(&mut f, module, symbol.as_ptr()) };
        self.check(s, "hipModuleGetFunction")?;
        Ok(f)
    }

    /// Enqueue `f` on `stream` with one pointer per kernel parameter in `params`.
    ///
    /// # Safety
    /// `f` must be a live function and `params` must point at one live value of the right
    /// size per kernel parameter, in order (the runtime copies them before returning).
    pub unsafe fn launch(
        &self,
        f: Function,
        grid: [u32; 3],
        block: [u32; 3],
        shared: u32,
        stream: Stream,
        params: &mut [*mut c_void],
    ) -> Result<(), String> {
        // SAFETY: guaranteed by the caller; `extra` is null (parameters come by pointer).
        let s = unsafe {
            (self.launch)(
                f,
                grid[0],
                grid[1],
                grid[2],
                block[0],
                block[1],
                block[2],
                shared,
                stream,
                params.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        };
        self.check(s, "hipModuleLaunchKernel")
    }
}

/// The text of a NUL-terminated byte buffer.
fn c_string(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The arch string in `bytes`: among the NUL-terminated strings that start a field with `gfx`
/// and a hex digit (`gfx90a`, `gfx942:sramecc+:xnack-`), the longest, so that the arch with
/// its feature flags wins over a device name that happens to be the bare processor.
pub fn find_arch(bytes: &[u8]) -> Option<String> {
    let mut best: Option<String> = None;
    for i in 0..bytes.len().saturating_sub(3) {
        let at_start = i == 0 || bytes[i - 1] == 0;
        if at_start && &bytes[i..i + 3] == b"gfx" && bytes[i + 3].is_ascii_hexdigit() {
            let s = c_string(&bytes[i..]);
            let ok = s.len() < 256
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'+' || b == b'-');
            if ok && best.as_ref().is_none_or(|b| s.len() > b.len()) {
                best = Some(s);
            }
        }
    }
    best
}

/// The processor part of an arch name (`gfx90a` of `gfx90a:sramecc+:xnack-`).
pub fn processor(arch: &str) -> &str {
    arch.split(':').next().unwrap_or(arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arch_string_is_found_in_either_properties_layout() {
        // a name field first (which may mention anything), then the arch at some offset
        let mut b = vec![0u8; 1024];
        b[..18].copy_from_slice(b"AMD Instinct MI210");
        b[396..396 + 22].copy_from_slice(b"gfx90a:sramecc+:xnack-");
        assert_eq!(find_arch(&b).as_deref(), Some("gfx90a:sramecc+:xnack-"));
        let mut c = vec![0u8; 2048];
        c[1160..1166].copy_from_slice(b"gfx942");
        assert_eq!(find_arch(&c).as_deref(), Some("gfx942"));
        // a device name that is the bare processor loses to the full arch string
        c[..6].copy_from_slice(b"gfx942");
        c[1160..1182].copy_from_slice(b"gfx942:sramecc+:xnack-");
        assert_eq!(find_arch(&c).as_deref(), Some("gfx942:sramecc+:xnack-"));
        // "gfx" inside another string, or not followed by a hex digit, is not an arch
        let mut d = vec![0u8; 64];
        d[..10].copy_from_slice(b"my gfx90a ");
        d[20..24].copy_from_slice(b"gfxz");
        assert_eq!(find_arch(&d), None);
        assert_eq!(processor("gfx90a:sramecc+:xnack-"), "gfx90a");
        assert_eq!(processor("gfx1030"), "gfx1030");
    }

    #[test]
    fn a_missing_library_is_named() {
        let e = Runtime::load(&[PathBuf::from("/nonexistent/libamdhip64.so")]).err().unwrap_or_default();
        assert!(e.starts_with("HIP: libamdhip64 not found"), "{e}");
        assert!(e.contains("/nonexistent/libamdhip64.so (absent)"), "{e}");
    }
}
