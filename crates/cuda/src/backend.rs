//! The CUDA device: the primary context of one GPU, one stream, buffers in device memory,
//! modules compiled by NVRTC on first use (see [`crate::program`]). Uploads return once the
//! host bytes are staged (the caller may reuse them), launches return once enqueued,
//! downloads and [`Backend::synchronize`] wait for the stream.

use std::collections::HashMap;
use std::ffi::{CString, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::program::{self, Origin};
use crate::storage::{self, Ctx, CudaStorage};
use cudarc::driver::{result, sys};
use omnifuse_core::backend::{check_supported_launch, op_set_support};
use omnifuse_core::cache::KernelCache;
use omnifuse_core::op::{Op, OpKind};
use omnifuse_core::{Backend, Buffer, BufferStorage, DType, DeviceInfo, DeviceKind, Error, Result, Support, Tensor};
use omnifuse_gpu::GpuDevice;
use omnifuse_gpu::kernel::{Arg, Kernel, Variant};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Driver handles that may move between threads.
#[derive(Clone, Copy)]
struct Handles {
    stream: sys::CUstream,
}

// SAFETY: CUstream is an opaque driver handle; the driver API is thread-safe and the backend
// binds its context before every call that uses it.
unsafe impl Send for Handles {}
// SAFETY: as above; the handle is never mutated after creation.
unsafe impl Sync for Handles {}

#[derive(Clone, Copy)]
struct Func(sys::CUfunction);
// SAFETY: a CUfunction is an opaque handle into a module the backend keeps loaded.
unsafe impl Send for Func {}

#[derive(Clone, Copy)]
struct Module(sys::CUmodule);
// SAFETY: a CUmodule is an opaque handle, loaded once and never unloaded while the backend
// lives.
unsafe impl Send for Module {}

#[derive(Default)]
struct Modules {
    modules: HashMap<Variant, Module>,
    functions: HashMap<(Variant, String), (Func, u32)>,
    built: Vec<(Variant, Origin)>,
}

/// One CUDA device with its primary context and stream.
pub struct CudaBackend {
    name: String,
    id: u64,
    ctx: Ctx,
    h: Handles,
    arch: u32,
    device_name: String,
    sms: usize,
    total_mem: u64,
    max_shared_optin: u32,
    cache: KernelCache,
    state: Mutex<Modules>,
    live: Arc<AtomicU64>,
    workspace: Mutex<Option<Buffer>>,
}

fn drv(device: &str, what: &str) -> impl Fn(cudarc::driver::DriverError) -> Error {
    let device = device.to_string();
    let what = what.to_string();
    move |e| Error::invalid(format!("{device}: {what} failed: {e:?}"))
}

impl CudaBackend {
    /// Open `cuda` or `cuda:N`. Absent driver, library or device → [`Error::DeviceUnavailable`].
    pub fn open(name: &str) -> Result<Self> {
        let ordinal = match name.split_once(':') {
            None => 0,
            Some((_, i)) => i.parse::<usize>().map_err(|_| {
                Error::invalid(format!("device '{name}': expected cuda or cuda:N with N a device number"))
            })?,
        };
        let canonical = format!("cuda:{ordinal}");
        let unavailable = |reason: String| Error::DeviceUnavailable { device: canonical.clone(), reason };
        let count = crate::device::driver().map_err(&unavailable)?;
        if ordinal >= count {
            return Err(unavailable(format!("there are {count} CUDA device(s), numbered from 0")));
        }
        let dev = result::device::get(ordinal as i32).map_err(drv(&canonical, "cuDeviceGet"))?;
        let attr = |a: sys::CUdevice_attribute| {
            // SAFETY: `dev` came from cuDeviceGet.
            unsafe { result::device::get_attribute(dev, a) }.map_err(drv(&canonical, "cuDeviceGetAttribute"))
        };
        use sys::CUdevice_attribute::*;
        let major = attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        let sms = attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        let max_shared_optin = attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?;
        let device_name = result::device::get_name(dev).map_err(drv(&canonical, "cuDeviceGetName"))?;
        // SAFETY: `dev` came from cuDeviceGet.
        let total_mem = unsafe { result::device::total_mem(dev) }.map_err(drv(&canonical, "cuDeviceTotalMem"))?;
        // SAFETY: retaining the primary context of a valid device; it is never released, so
        // buffers that outlive the backend can still be freed in it.
        let ctx = unsafe { result::primary_ctx::retain(dev) }.map_err(drv(&canonical, "cuDevicePrimaryCtxRetain"))?;
        // SAFETY: `ctx` was just retained.
        unsafe { result::ctx::set_current(ctx) }.map_err(drv(&canonical, "cuCtxSetCurrent"))?;
        let stream = result::stream::create(result::stream::StreamKind::NonBlocking)
            .map_err(drv(&canonical, "cuStreamCreate"))?;
        Ok(CudaBackend {
            name: canonical,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            ctx: Ctx(ctx),
            h: Handles { stream },
            arch: (major * 10 + minor) as u32,
            device_name,
            sms: sms as usize,
            total_mem: total_mem as u64,
            max_shared_optin: max_shared_optin as u32,
            cache: KernelCache::new(KernelCache::default_dir().join("cuda")),
            state: Mutex::new(Modules::default()),
            live: Arc::new(AtomicU64::new(0)),
            workspace: Mutex::new(None),
        })
    }

    /// The stream handle, for peers (cuBLAS) that must run on the same stream.
    pub(crate) fn stream(&self) -> sys::CUstream {
        self.h.stream
    }

    /// Make this device's context current on the calling thread.
    pub(crate) fn bind(&self) -> Result<()> {
        // SAFETY: the primary context is retained for the process's life.
        unsafe { result::ctx::set_current(self.ctx.0) }.map_err(drv(&self.name, "cuCtxSetCurrent"))
    }

    /// Compute capability as `major·10 + minor` (80, 86, 89, 90, ...).
    pub fn arch(&self) -> u32 {
        self.arch
    }

    /// The modules compiled or loaded so far, for reports.
    pub fn built(&self) -> Vec<(Variant, Origin)> {
        self.state.lock().map(|s| s.built.clone()).unwrap_or_default()
    }

    fn function(&self, k: &Kernel) -> Result<(Func, u32)> {
        let mut st = self.state.lock().map_err(|_| Error::invalid("cuda: module table poisoned"))?;
        let fkey = (k.variant.clone(), k.symbol.clone());
        if let Some(f) = st.functions.get(&fkey) {
            return Ok(*f);
        }
        let module = match st.modules.get(&k.variant) {
            Some(m) => *m,
            None => {
                let (mut image, origin) =
                    program::compile(&k.variant, &format!("sm_{}", self.arch), Some(&self.cache))?;
                image.push(0);
                // SAFETY: `image` is a cubin NVRTC produced for this device's arch (or the
                // cached copy of one), kept alive across the call.
                let m = unsafe { result::module::load_data(image.as_ptr() as *const c_void) }
                    .map_err(drv(&self.name, &format!("loading kernels/gpu/{}", k.variant.source.file())))?;
                st.modules.insert(k.variant.clone(), Module(m));
                st.built.push((k.variant.clone(), origin));
                Module(m)
            }
        };
        let sym = CString::new(k.symbol.as_str()).map_err(|_| Error::invalid("kernel symbol has a NUL byte"))?;
        // SAFETY: `module.0` is a loaded module.
        let f = unsafe { result::module::get_function(module.0, sym) }
            .map_err(drv(&self.name, &format!("finding {} in {}", k.symbol, k.variant.source.file())))?;
        let entry = (Func(f), 48 * 1024);
        st.functions.insert(fkey, entry);
        Ok(entry)
    }
}

/// The launch layer's view of the device (`omnifuse_gpu::launch` maps every op through it).
impl GpuDevice for CudaBackend {
    /// Compile (once), then enqueue `k` with `args` on the stream.
    fn enqueue(&self, k: &Kernel, args: &[Arg]) -> Result<()> {
        self.bind()?;
        let (f, shared_ok) = self.function(k)?;
        if k.shared_bytes > shared_ok {
            if k.shared_bytes > self.max_shared_optin {
                return Err(Error::invalid(format!(
                    "{}: {} wants {} bytes of shared memory; the device allows {}",
                    self.name, k.symbol, k.shared_bytes, self.max_shared_optin
                )));
            }
            // SAFETY: `f.0` is a function of a loaded module.
            unsafe {
                result::function::set_function_attribute(
                    f.0,
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    k.shared_bytes as i32,
                )
            }
            .map_err(drv(&self.name, "cuFuncSetAttribute"))?;
            if let Ok(mut st) = self.state.lock()
                && let Some(e) = st.functions.get_mut(&(k.variant.clone(), k.symbol.clone()))
            {
                e.1 = k.shared_bytes;
            }
        }
        // Every argument is stored in 8 bytes (see `Arg::slot`).
        let mut slots: Vec<u64> = args.iter().map(|a| a.slot()).collect();
        let mut params: Vec<*mut c_void> = slots.iter_mut().map(|s| s as *mut u64 as *mut c_void).collect();
        let [gx, gy, gz] = k.grid;
        let [bx, by, bz] = k.block;
        if gx == 0 || gy == 0 || gz == 0 {
            return Ok(());
        }
        // SAFETY: `params` points at one live value per kernel parameter, in order; the
        // driver copies them before returning. Buffer addresses were checked to belong to
        // this device by `ptr`.
        unsafe { result::launch_kernel(f.0, (gx, gy, gz), (bx, by, bz), k.shared_bytes, self.h.stream, &mut params) }
            .map_err(drv(&self.name, &format!("launching {}", k.symbol)))
    }

    /// Run `f` with the device address of a scratch area of at least `bytes` bytes, reused
    /// across launches: work enqueued inside `f` runs in stream order after every earlier
    /// user's work, and the lock held across `f` keeps another thread's work from landing
    /// between the kernels of one user. It only grows; the old area is freed after the
    /// stream has drained, since enqueued kernels may still read it.
    fn with_workspace<T>(&self, bytes: usize, f: impl FnOnce(u64) -> Result<T>) -> Result<T> {
        let mut ws = self.workspace.lock().map_err(|_| Error::invalid("cuda: workspace lock poisoned"))?;
        if ws.as_ref().is_none_or(|b| b.bytes() < bytes) {
            if ws.is_some() {
                self.synchronize()?;
            }
            *ws = None;
            *ws = Some(self.alloc(bytes.next_power_of_two().max(1 << 20))?);
        }
        let buf = ws.as_ref().ok_or_else(|| Error::invalid("cuda: no workspace"))?;
        let base = storage::storage(buf, &self.name, self.id)?.ptr();
        f(base)
    }

    /// Enqueue a device-to-device copy of `bytes` from the start of `src` to `dst`.
    fn copy(&self, src: &Tensor, dst: &Tensor, bytes: usize) -> Result<()> {
        self.bind()?;
        let (s, d) = (self.ptr(src)?, self.ptr(dst)?);
        if bytes == 0 {
            return Ok(());
        }
        // SAFETY: both addresses belong to live allocations of at least `bytes` bytes (the
        // launch checks sized them); the copy is ordered on our stream.
        unsafe { result::memcpy_dtod_async(d, s, bytes, self.h.stream) }.map_err(drv(&self.name, "cuMemcpyDtoDAsync"))
    }

    fn ptr(&self, t: &Tensor) -> Result<u64> {
        Ok(storage::storage(&t.buf, &self.name, self.id)?.ptr())
    }

    fn warp_size(&self) -> u32 {
        32
    }

    fn max_shared_bytes(&self) -> u32 {
        self.max_shared_optin
    }

    fn tensor_cores(&self) -> Option<u32> {
        Some(self.arch)
    }

    fn compute_units(&self) -> usize {
        self.sms
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn info(&self) -> DeviceInfo {
        let mut features = vec![format!("sm_{}", self.arch)];
        if self.arch >= 80 {
            features.push("mma.sync f16/s8".into());
        }
        if let Ok(n) = crate::nvrtc::get() {
            features.push(format!("nvrtc {}.{}", n.version().0, n.version().1));
        }
        DeviceInfo {
            name: self.name.clone(),
            backend: "cuda",
            device_name: self.device_name.clone(),
            kind: DeviceKind::Gpu,
            compute_units: self.sms,
            memory_bytes: self.total_mem,
            arch: format!("sm_{}", self.arch),
            features,
            peak_gflops_f32: None,
            peak_source: "not probed".into(),
        }
    }

    fn supports(&self, kind: OpKind, dtype: DType) -> Support {
        op_set_support(kind, dtype)
    }

    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        Ok(Buffer::new(CudaStorage::alloc(self.ctx, bytes, &self.name, self.id, self.live.clone())?))
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
        // SAFETY: the destination holds at least `src.len()` bytes; from pageable host memory
        // the call returns once `src` has been staged, so the caller may reuse it.
        unsafe { result::memcpy_htod_async(d.ptr(), src, self.h.stream) }.map_err(drv(&self.name, "cuMemcpyHtoDAsync"))
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
            unsafe { result::memcpy_dtoh_async(dst, s.ptr(), self.h.stream) }
                .map_err(drv(&self.name, "cuMemcpyDtoHAsync"))?;
        }
        self.synchronize()
    }

    fn launch(&self, op: &Op, inputs: &[&Tensor], output: &Tensor) -> Result<()> {
        check_supported_launch(self, op, inputs, output)?;
        omnifuse_gpu::launch(self, op, inputs, output)
    }

    fn synchronize(&self) -> Result<()> {
        self.bind()?;
        // SAFETY: the stream was created in our context and is never destroyed while we live.
        unsafe { result::stream::synchronize(self.h.stream) }.map_err(drv(&self.name, "cuStreamSynchronize"))
    }

    fn memory_in_use(&self) -> Option<u64> {
        Some(self.live.load(Ordering::Relaxed))
    }
}
