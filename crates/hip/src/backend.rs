//! The HIP device: one GPU, one non-blocking stream, buffers in device memory, modules
//! compiled by hiprtc for the device's `gcnArchName` on first use (see [`crate::program`]).
//! Uploads return once the host bytes have been copied (the caller may reuse them), launches
//! return once enqueued, downloads and [`Backend::synchronize`] wait for the stream.

use std::collections::HashMap;
use std::ffi::{CString, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use omnifuse_core::backend::{check_supported_launch, op_set_support};
use omnifuse_core::cache::KernelCache;
use omnifuse_core::op::{Op, OpKind};
use omnifuse_core::{Backend, Buffer, BufferStorage, DType, DeviceInfo, DeviceKind, Error, Result, Support, Tensor};

use omnifuse_gpu::GpuDevice;
use omnifuse_gpu::kernel::{Arg, Kernel, Variant};

use crate::api::{self, Runtime, attr};
use crate::program::{self, Origin};
use crate::storage::{self, HipStorage};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Runtime handles that may move between threads.
#[derive(Clone, Copy)]
struct Handles {
    stream: api::Stream,
}

// SAFETY: a hipStream_t is an opaque runtime handle; the HIP runtime is thread-safe and the
// backend makes its device current before every call that uses it.
unsafe impl Send for Handles {}
// SAFETY: as above; the handle is never mutated after creation.
unsafe impl Sync for Handles {}

#[derive(Clone, Copy)]
struct Func(api::Function);
// SAFETY: a hipFunction_t is an opaque handle into a module the backend keeps loaded.
unsafe impl Send for Func {}

#[derive(Clone, Copy)]
struct Module(api::Module);
// SAFETY: a hipModule_t is an opaque handle, loaded once and never unloaded while the
// backend lives.
unsafe impl Send for Module {}

#[derive(Default)]
struct Modules {
    modules: HashMap<Variant, Module>,
    functions: HashMap<(Variant, String), Func>,
    built: Vec<(Variant, Origin)>,
}

/// One HIP device with its stream.
pub struct HipBackend {
    name: String,
    id: u64,
    ordinal: i32,
    rt: &'static Runtime,
    h: Handles,
    arch: String,
    warp: u32,
    device_name: String,
    cus: usize,
    total_mem: u64,
    max_shared: u32,
    max_threads: u32,
    cache: KernelCache,
    state: Mutex<Modules>,
    live: Arc<AtomicU64>,
    workspace: Mutex<Option<Buffer>>,
}

impl HipBackend {
    /// Open `hip` or `hip:N`. Absent runtime or device → [`Error::DeviceUnavailable`].
    pub fn open(name: &str) -> Result<Self> {
        let ordinal = match name.split_once(':') {
            None if name == "hip" => 0,
            Some(("hip", i)) => i.parse::<usize>().map_err(|_| {
                Error::invalid(format!("device '{name}': expected hip or hip:N with N a device number"))
            })?,
            _ => return Err(Error::invalid(format!("device '{name}': expected hip or hip:N"))),
        };
        let canonical = format!("hip:{ordinal}");
        let unavailable = |reason: String| Error::DeviceUnavailable { device: canonical.clone(), reason };
        let count = crate::device::runtime().map_err(&unavailable)?;
        if ordinal >= count {
            return Err(unavailable(format!("there are {count} HIP device(s), numbered from 0")));
        }
        let rt = api::runtime().map_err(&unavailable)?;
        let dev = ordinal as i32;
        let fail = |e: String| Error::Backend { backend: canonical.clone(), message: e };
        rt.set_device(dev).map_err(fail)?;
        let warp = rt.attribute(attr::WARP_SIZE, dev).map_err(fail)?;
        if !(warp == 32 || warp == 64) {
            return Err(fail(format!("unexpected wavefront size {warp} (expected 32 or 64)")));
        }
        let arch = rt.arch_name(dev).map_err(fail)?;
        if !program::valid_arch(&arch) {
            return Err(unavailable(format!("the device reports arch '{arch}', which is not a gfx target")));
        }
        let stream = rt.stream_create().map_err(fail)?;
        Ok(HipBackend {
            name: canonical.clone(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            ordinal: dev,
            rt,
            h: Handles { stream },
            warp: warp as u32,
            device_name: rt.device_name(dev).map_err(fail)?,
            cus: rt.attribute(attr::MULTIPROCESSOR_COUNT, dev).map_err(fail)?.max(0) as usize,
            total_mem: rt.total_mem(dev).map_err(fail)?,
            max_shared: rt.attribute(attr::MAX_SHARED_MEMORY_PER_BLOCK, dev).map_err(fail)?.max(0) as u32,
            max_threads: rt.attribute(attr::MAX_THREADS_PER_BLOCK, dev).map_err(fail)?.max(0) as u32,
            arch,
            cache: KernelCache::new(KernelCache::default_dir().join("hip")),
            state: Mutex::new(Modules::default()),
            live: Arc::new(AtomicU64::new(0)),
            workspace: Mutex::new(None),
        })
    }

    fn fail(&self, e: String) -> Error {
        Error::Backend { backend: self.name.clone(), message: e }
    }

    /// Make this device current on the calling thread.
    pub(crate) fn bind(&self) -> Result<()> {
        self.rt.set_device(self.ordinal).map_err(|e| self.fail(e))
    }

    /// The full arch name (`gfx90a:sramecc+:xnack-`) the kernels are compiled for.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// The modules compiled or loaded so far, for reports.
    pub fn built(&self) -> Vec<(Variant, Origin)> {
        self.state.lock().map(|s| s.built.clone()).unwrap_or_default()
    }

    fn function(&self, k: &Kernel) -> Result<Func> {
        let mut st = self.state.lock().map_err(|_| Error::invalid("hip: module table poisoned"))?;
        let fkey = (k.variant.clone(), k.symbol.clone());
        if let Some(f) = st.functions.get(&fkey) {
            return Ok(*f);
        }
        let module = match st.modules.get(&k.variant) {
            Some(m) => *m,
            None => {
                let (image, origin) = program::compile(&k.variant, &self.arch, self.rt.version(), Some(&self.cache))?;
                let m = self
                    .rt
                    .module_load(&image)
                    .map_err(|e| self.fail(format!("loading kernels/gpu/{}: {e}", k.variant.source.file())))?;
                st.modules.insert(k.variant.clone(), Module(m));
                st.built.push((k.variant.clone(), origin));
                Module(m)
            }
        };
        let sym = CString::new(k.symbol.as_str()).map_err(|_| Error::invalid("kernel symbol has a NUL byte"))?;
        // SAFETY: `module.0` is a loaded module, never unloaded while we live.
        let f = unsafe { self.rt.module_function(module.0, &sym) }
            .map_err(|e| self.fail(format!("finding {} in {}: {e}", k.symbol, k.variant.source.file())))?;
        st.functions.insert(fkey, Func(f));
        Ok(Func(f))
    }
}

/// The launch layer's view of the device (`omnifuse_gpu::launch` maps every op through it):
/// no tensor cores, so the general path runs every op.
impl GpuDevice for HipBackend {
    /// Compile (once), then enqueue `k` with `args` on the stream.
    fn enqueue(&self, k: &Kernel, args: &[Arg]) -> Result<()> {
        let [gx, gy, gz] = k.grid;
        let [bx, by, bz] = k.block;
        let threads = u64::from(bx) * u64::from(by) * u64::from(bz);
        if threads == 0 || threads > u64::from(self.max_threads) || threads % u64::from(self.warp) != 0 {
            return Err(Error::invalid(format!(
                "{}: {} launched with {threads} threads per workgroup; the device takes whole \
                 wavefronts of {} up to {}",
                self.name, k.symbol, self.warp, self.max_threads
            )));
        }
        if k.shared_bytes > self.max_shared {
            return Err(Error::invalid(format!(
                "{}: {} wants {} bytes of LDS; the device allows {}",
                self.name, k.symbol, k.shared_bytes, self.max_shared
            )));
        }
        self.bind()?;
        let f = self.function(k)?;
        if gx == 0 || gy == 0 || gz == 0 {
            return Ok(());
        }
        let mut slots: Vec<u64> = args.iter().map(|a| a.slot()).collect();
        let mut params: Vec<*mut c_void> = slots.iter_mut().map(|s| s as *mut u64 as *mut c_void).collect();
        // SAFETY: `params` points at one live 8-byte slot per kernel parameter, in order; the
        // runtime copies them before returning. Buffer addresses were checked to belong to
        // this device by `ptr`.
        unsafe { self.rt.launch(f.0, k.grid, k.block, k.shared_bytes, self.h.stream, &mut params) }
            .map_err(|e| self.fail(format!("launching {}: {e}", k.symbol)))
    }

    /// Enqueue a device-to-device copy of `bytes` from the start of `src` to `dst`.
    fn copy(&self, src: &Tensor, dst: &Tensor, bytes: usize) -> Result<()> {
        let (s, d) = (self.ptr(src)?, self.ptr(dst)?);
        if bytes > src.buf.bytes() || bytes > dst.buf.bytes() {
            return Err(Error::invalid(format!("copy of {bytes} bytes exceeds a buffer")));
        }
        self.bind()?;
        if bytes == 0 {
            return Ok(());
        }
        // SAFETY: both addresses belong to live allocations of at least `bytes` bytes
        // (checked above); the copy is ordered on our stream.
        unsafe { self.rt.dtod(d, s, bytes, self.h.stream) }.map_err(|e| self.fail(e))
    }

    fn ptr(&self, t: &Tensor) -> Result<u64> {
        Ok(storage::storage(&t.buf, &self.name, self.id)?.ptr())
    }

    /// Run `f` with the device address of a scratch area of at least `bytes` bytes, reused
    /// across launches: work enqueued inside `f` runs in stream order after every earlier
    /// user's work, and the lock held across `f` keeps another thread's work from landing
    /// between the kernels of one user. It only grows; the old area is freed after the
    /// stream has drained, since enqueued kernels may still read it.
    fn with_workspace<T>(&self, bytes: usize, f: impl FnOnce(u64) -> Result<T>) -> Result<T> {
        let mut ws = self.workspace.lock().map_err(|_| Error::invalid("hip: workspace lock poisoned"))?;
        if ws.as_ref().is_none_or(|b| b.bytes() < bytes) {
            if ws.is_some() {
                self.synchronize()?;
            }
            *ws = None;
            *ws = Some(self.alloc(bytes.next_power_of_two().max(1 << 20))?);
        }
        let buf = ws.as_ref().ok_or_else(|| Error::invalid("hip: no workspace"))?;
        let base = storage::storage(buf, &self.name, self.id)?.ptr();
        f(base)
    }

    /// The wavefront width (64 on CDNA, 32 on RDNA), as the device reports it.
    fn warp_size(&self) -> u32 {
        self.warp
    }

    fn max_shared_bytes(&self) -> u32 {
        self.max_shared
    }

    fn tensor_cores(&self) -> Option<u32> {
        None
    }

    fn compute_units(&self) -> usize {
        self.cus
    }
}

impl Backend for HipBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn info(&self) -> DeviceInfo {
        let mut features = vec![self.arch.clone(), format!("wavefront {}", self.warp)];
        if let Ok(h) = crate::hiprtc::get() {
            features.push(format!("hiprtc {}.{}", h.version().0, h.version().1));
        }
        let v = self.rt.version();
        features.push(format!("HIP {}.{}.{}", v / 10_000_000, v / 100_000 % 100, v % 100_000));
        DeviceInfo {
            name: self.name.clone(),
            backend: "hip",
            device_name: self.device_name.clone(),
            kind: DeviceKind::Gpu,
            compute_units: self.cus,
            memory_bytes: self.total_mem,
            arch: api::processor(&self.arch).to_string(),
            features,
            peak_gflops_f32: None,
            peak_source: "not probed".into(),
        }
    }

    fn supports(&self, kind: OpKind, dtype: DType) -> Support {
        op_set_support(kind, dtype)
    }

    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        Ok(Buffer::new(HipStorage::alloc(self.rt, self.ordinal, bytes, &self.name, self.id, self.live.clone())?))
    }

    fn upload(&self, dst: &Buffer, src: &[u8]) -> Result<()> {
        let d = storage::storage(dst, &self.name, self.id)?;
        if src.len() > d.bytes() {
            return Err(Error::invalid(format!("upload of {} bytes into a {}-byte buffer", src.len(), d.bytes())));
        }
        self.bind()?;
        if src.is_empty() {
            return Ok(());
        }
        // SAFETY: the destination holds at least `src.len()` bytes. HIP does not promise that
        // an async copy from pageable memory has read `src` on return, so the stream is
        // synchronised before returning, after which the caller may reuse `src`.
        unsafe { self.rt.htod(d.ptr(), src, self.h.stream) }.map_err(|e| self.fail(e))?;
        self.synchronize()
    }

    fn download(&self, src: &Buffer, dst: &mut [u8]) -> Result<()> {
        let s = storage::storage(src, &self.name, self.id)?;
        if dst.len() > s.bytes() {
            return Err(Error::invalid(format!("download of {} bytes from a {}-byte buffer", dst.len(), s.bytes())));
        }
        self.bind()?;
        if !dst.is_empty() {
            // SAFETY: the source holds at least `dst.len()` bytes; the stream is synchronised
            // below before `dst` is read.
            unsafe { self.rt.dtoh(dst, s.ptr(), self.h.stream) }.map_err(|e| self.fail(e))?;
        }
        self.synchronize()
    }

    fn launch(&self, op: &Op, inputs: &[&Tensor], output: &Tensor) -> Result<()> {
        check_supported_launch(self, op, inputs, output)?;
        omnifuse_gpu::launch(self, op, inputs, output)
    }

    fn synchronize(&self) -> Result<()> {
        self.bind()?;
        // SAFETY: the stream was created on our device and is never destroyed while we live.
        unsafe { self.rt.stream_sync(self.h.stream) }.map_err(|e| self.fail(e))
    }

    fn memory_in_use(&self) -> Option<u64> {
        Some(self.live.load(Ordering::Relaxed))
    }
}
