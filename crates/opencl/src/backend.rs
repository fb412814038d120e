//! The OpenCL device: a context and one in-order queue on one device, buffers in device
//! memory, kernels built on first use (see [`crate::program`]). Uploads block until the
//! host bytes are copied (so the caller may reuse them), launches return once enqueued,
//! downloads and [`Backend::synchronize`] wait for the queue.

use std::collections::HashMap;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use omnifuse_core::backend::{check_supported_launch, op_set_support};
use omnifuse_core::cache::KernelCache;
use omnifuse_core::op::{Op, OpKind};
use omnifuse_core::{Backend, Buffer, DType, DeviceInfo, DeviceKind, Error, Result, Support, Tensor};
use opencl3::command_queue::{CommandQueue, enqueue_copy_buffer, enqueue_read_buffer, enqueue_write_buffer};
use opencl3::context::Context;
use opencl3::device::{CL_DEVICE_TYPE_CPU, CL_DEVICE_TYPE_GPU, CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT, Device};
use opencl3::error_codes::{CL_INVALID_BUFFER_SIZE, CL_MEM_OBJECT_ALLOCATION_FAILURE, CL_OUT_OF_RESOURCES};
use opencl3::event::Event;
use opencl3::kernel::Kernel;
use opencl3::memory::{Buffer as ClBuffer, CL_MEM_COPY_HOST_PTR, CL_MEM_READ_ONLY, CL_MEM_READ_WRITE};
use opencl3::program::Program;
use opencl3::types::{CL_BLOCKING, cl_mem};

use crate::device;
use crate::error::cl;
use crate::program::{Builder, Family, Origin, cache_dir};
use crate::storage::{self, ClStorage};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Work-group size of 1-D elementwise launches.
const LINEAR_WG: usize = 64;

/// A kernel argument.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg {
    /// A buffer.
    Mem(cl_mem),
    /// `ulong`.
    U64(u64),
    /// `int`.
    I32(i32),
    /// `float`.
    F32(f32),
}

/// Which kernel of `gemm.cl` a GEMM runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GemmVariant {
    /// `gemm_tiled`: local-memory slabs, strided register blocks (GPU-style; the default).
    Tiled,
    /// `gemm_vec`: no local memory, each work-item a WM × WN block of contiguous outputs in
    /// floatWN accumulators (CPU-class devices). Float storage only; i8 keeps `gemm_tiled`.
    Vec,
}

impl GemmVariant {
    /// The name used in the tuning file and reports.
    pub fn name(self) -> &'static str {
        match self {
            GemmVariant::Tiled => "tiled",
            GemmVariant::Vec => "vec",
        }
    }

    /// The variant called `s`.
    pub fn parse(s: &str) -> Option<GemmVariant> {
        [GemmVariant::Tiled, GemmVariant::Vec].into_iter().find(|v| v.name() == s)
    }
}

/// GEMM kernel variant and tile sizes (build options of `gemm.cl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GemmTiles {
    /// The kernel.
    pub variant: GemmVariant,
    /// Output rows per work-group.
    pub tm: usize,
    /// Output columns per work-group.
    pub tn: usize,
    /// Reduction slab depth (for `Vec`: the K block between barriers, 0 for one sweep).
    pub tk: usize,
    /// Rows per work-item.
    pub wm: usize,
    /// Columns per work-item (for `Vec`, the vector width: 4, 8 or 16).
    pub wn: usize,
}

impl GemmTiles {
    /// The default: 64 × 64 tiles, K slabs of 16, 4 × 4 per work-item (256 items).
    pub const DEFAULT: GemmTiles = GemmTiles::tiled(64, 64, 16, 4, 4);
    /// A small fallback for devices with small work-groups: 32 × 32, 4 × 4 (64 items).
    pub const SMALL: GemmTiles = GemmTiles::tiled(32, 32, 8, 4, 4);

    /// A `gemm_tiled` configuration.
    pub const fn tiled(tm: usize, tn: usize, tk: usize, wm: usize, wn: usize) -> GemmTiles {
        GemmTiles { variant: GemmVariant::Tiled, tm, tn, tk, wm, wn }
    }

    /// A `gemm_vec` configuration (`tk`: K block between barriers, 0 for none).
    pub const fn vec(tm: usize, tn: usize, tk: usize, wm: usize, wn: usize) -> GemmTiles {
        GemmTiles { variant: GemmVariant::Vec, tm, tn, tk, wm, wn }
    }

    /// Work-items per work-group.
    pub fn items(&self) -> usize {
        (self.tm / self.wm.max(1)) * (self.tn / self.wn.max(1))
    }

    /// Local memory the kernel's slabs take, in bytes.
    pub fn local_bytes(&self) -> u64 {
        match self.variant {
            GemmVariant::Tiled => 4 * (self.tk * (self.tm + self.tn)) as u64,
            GemmVariant::Vec => 0,
        }
    }

    /// True when the tile sizes are consistent and a device with work-groups of up to
    /// `max_work_group` items and `local_mem` bytes of local memory runs them.
    pub fn fits(&self, max_work_group: usize, local_mem: u64) -> bool {
        let shape = match self.variant {
            GemmVariant::Tiled => self.tk > 0,
            GemmVariant::Vec => matches!(self.wn, 4 | 8 | 16),
        };
        let whole = shape
            && [self.tm, self.tn, self.wm, self.wn].iter().all(|&v| v > 0)
            && self.tm.is_multiple_of(self.wm)
            && self.tn.is_multiple_of(self.wn);
        whole && self.items() <= max_work_group && self.local_bytes() <= local_mem
    }

    /// The build options.
    pub fn options(&self) -> String {
        let vec = if self.variant == GemmVariant::Vec { " -DGEMM_VEC=1" } else { "" };
        format!("-DTM={} -DTN={} -DTK={} -DWM={} -DWN={}{vec}", self.tm, self.tn, self.tk, self.wm, self.wn)
    }

    /// The kernel's name (without the dtype suffix).
    pub fn kernel(&self) -> &'static str {
        match self.variant {
            GemmVariant::Tiled => "gemm_tiled",
            GemmVariant::Vec => "gemm_vec",
        }
    }
}

impl std::fmt::Display for GemmTiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let GemmTiles { tm, tn, tk, wm, wn, .. } = *self;
        write!(f, "{} TM={tm} TN={tn} TK={tk} WM={wm} WN={wn}", self.variant.name())
    }
}

struct Kernels {
    programs: HashMap<(Family, String), Program>,
    kernels: HashMap<(Family, String, String), Kernel>,
    built: Vec<(Family, String, Origin)>,
}

/// An OpenCL device with its context and queue.
pub struct OpenClBackend {
    name: String,
    device: Device,
    context: Context,
    queue: CommandQueue,
    builder: Builder,
    state: Mutex<Kernels>,
    id: u64,
    device_name: String,
    max_work_group: usize,
    local_mem: u64,
    gemm_tiles: Mutex<GemmTiles>,
    default_tiles: GemmTiles,
    tiles_source: Mutex<String>,
    peak: OnceLock<std::result::Result<f64, String>>,
}

fn is_kind(t: u64, bit: u64) -> bool {
    t & bit != 0
}

impl OpenClBackend {
    /// Open the device `name` (`opencl`, `opencl:P`, `opencl:P:D`). GEMMs use the tiles a
    /// `tune` run stored for the device, else the default; a name ending in `@default`
    /// (`opencl:0:0@default`) ignores the stored tiles, to compare the two in one process.
    pub fn open(name: &str) -> Result<Self> {
        let (name, use_tuned) = match name.strip_suffix("@default") {
            Some(base) => (base, false),
            None => (name, true),
        };
        let (canonical, device) = device::select(name)?;
        let unavailable = |what: &str, e: opencl3::error_codes::ClError| Error::DeviceUnavailable {
            device: canonical.clone(),
            reason: format!("{what}: {e} ({})", e.0),
        };
        let serial = device::discovery_lock();
        let context = Context::from_device(&device).map_err(|e| unavailable("creating a context", e))?;
        #[allow(deprecated)]
        let queue = CommandQueue::create_default(&context, 0).map_err(|e| unavailable("creating a queue", e))?;
        drop(serial);
        let device_name = device.name().unwrap_or_default().trim().to_string();
        let driver = device.driver_version().unwrap_or_default();
        let correctly_rounded =
            device.single_fp_config().map(|c| c & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT != 0).unwrap_or(false);
        let base_options = if correctly_rounded { "-cl-fp32-correctly-rounded-divide-sqrt" } else { "" }.to_string();
        let max_work_group = device.max_work_group_size().unwrap_or(64);
        let local_mem = device.local_mem_size().unwrap_or(16 * 1024);
        let default_tiles =
            if GemmTiles::DEFAULT.fits(max_work_group, local_mem) { GemmTiles::DEFAULT } else { GemmTiles::SMALL };
        let device_key = crate::tune::device_key(&device_name, &driver);
        let builder = Builder {
            device_name: device_name.clone(),
            driver,
            device: canonical.clone(),
            base_options,
            cache: KernelCache::new(cache_dir()),
        };
        Ok(OpenClBackend {
            name: canonical,
            device,
            context,
            queue,
            builder,
            state: Mutex::new(Kernels { programs: HashMap::new(), kernels: HashMap::new(), built: Vec::new() }),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            device_name,
            max_work_group,
            local_mem,
            gemm_tiles: Mutex::new(default_tiles),
            default_tiles,
            tiles_source: Mutex::new("default".into()),
            peak: OnceLock::new(),
        })
        .inspect(|b| {
            // Tiles a `tune` run stored for this device win over the defaults.
            if use_tuned
                && let Some(t) = crate::tune::stored(&crate::tune::tuning_file(), &device_key)
                && b.set_gemm_tiles(t).is_ok()
            {
                b.tiles_source.lock().map(|mut s| *s = "tuned".into()).ok();
            }
        })
    }

    /// Peak f32 GFLOP/s measured by the FMA probe of `probe.cl` (once per backend): the
    /// fastest of three launches sized to take tens of milliseconds.
    pub fn measured_peak(&self) -> std::result::Result<f64, String> {
        self.peak.get_or_init(|| self.probe().map_err(|e| e.to_string())).clone()
    }

    fn probe(&self) -> Result<f64> {
        let wg = LINEAR_WG.min(self.max_work_group.max(1));
        let units = self.device.max_compute_units().unwrap_or(1).max(1) as usize;
        let items = units * 16 * wg;
        let out = self.alloc(items * 4)?;
        let mem = self.storage(&out)?.raw();
        let mut iters = 256usize;
        let mut best = 0.0f64;
        for _ in 0..8 {
            let args = [Arg::Mem(mem), Arg::I32(iters as i32), Arg::F32(0.999_999), Arg::F32(1e-6)];
            let t = Instant::now();
            self.run(Family::Probe, "-DT_F32", "probe_fma_f32", &args, &[items], Some(&[wg]))?;
            self.synchronize()?;
            let dt = t.elapsed().as_secs_f64();
            best = best.max((items * iters * 64) as f64 / dt / 1e9);
            if dt < 0.02 && iters < (1 << 24) {
                iters *= 4;
            } else if dt >= 0.02 {
                // Long enough to time: two more rounds at this size, keep the fastest.
                for _ in 0..2 {
                    let t = Instant::now();
                    self.run(Family::Probe, "-DT_F32", "probe_fma_f32", &args, &[items], Some(&[wg]))?;
                    self.synchronize()?;
                    best = best.max((items * iters * 64) as f64 / t.elapsed().as_secs_f64() / 1e9);
                }
                break;
            }
        }
        Ok(best)
    }

    /// The key of this device in the tuning file (name and driver version).
    pub fn device_key(&self) -> String {
        crate::tune::device_key(&self.device_name, &self.builder.driver)
    }

    /// Use `t` for GEMMs from now on, if this device can run it.
    pub fn set_gemm_tiles(&self, t: GemmTiles) -> Result<()> {
        if !t.fits(self.max_work_group, self.local_mem) {
            return Err(Error::invalid(format!(
                "{}: GEMM tiles {t:?} do not fit this device (work-group ≤ {}, local memory {} bytes)",
                self.name, self.max_work_group, self.local_mem
            )));
        }
        *self.gemm_tiles.lock().map_err(|_| self.poisoned())? = t;
        Ok(())
    }

    /// Where the GEMM tiles in use came from: `default` or `tuned`.
    pub fn gemm_tiles_source(&self) -> String {
        self.tiles_source.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn poisoned(&self) -> Error {
        Error::Backend { backend: self.name.clone(), message: "a lock was poisoned by a failed launch".into() }
    }

    /// The program builder (cache location, device identity).
    pub fn builder(&self) -> &Builder {
        &self.builder
    }

    /// The device's largest work-group.
    pub fn max_work_group(&self) -> usize {
        self.max_work_group
    }

    /// The default GEMM tiles of this device (what runs without a tuning file).
    pub fn default_gemm_tiles(&self) -> GemmTiles {
        self.default_tiles
    }

    /// GEMM tile sizes in use.
    pub fn gemm_tiles(&self) -> GemmTiles {
        self.gemm_tiles.lock().map(|t| *t).unwrap_or(GemmTiles::SMALL)
    }

    /// Programs built so far and where each came from (cache or source).
    pub fn built_programs(&self) -> Vec<(Family, String, Origin)> {
        self.lock().map(|s| s.built.clone()).unwrap_or_default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Kernels>> {
        self.state.lock().map_err(|_| Error::Backend {
            backend: self.name.clone(),
            message: "the kernel table lock was poisoned by a failed launch".into(),
        })
    }

    pub(crate) fn storage<'a>(&self, buf: &'a Buffer) -> Result<&'a ClStorage> {
        storage::storage(buf, &self.name, self.id)
    }

    /// The `cl_mem` of a tensor of this device.
    pub(crate) fn mem(&self, t: &Tensor) -> Result<cl_mem> {
        Ok(self.storage(&t.buf)?.raw())
    }

    fn create(&self, flags: u64, bytes: usize, host: *mut c_void) -> Result<ClBuffer<u8>> {
        // SAFETY: `host` is null or points to `bytes` readable bytes (COPY_HOST_PTR copies them
        // before this returns); the context is this backend's own.
        unsafe { ClBuffer::<u8>::create(&self.context, flags, bytes.max(1), host) }.map_err(|e| match e.0 {
            CL_MEM_OBJECT_ALLOCATION_FAILURE | CL_OUT_OF_RESOURCES | CL_INVALID_BUFFER_SIZE => {
                Error::OutOfMemory { device: self.name.clone(), bytes }
            }
            _ => cl(&self.name, &format!("allocating {bytes} bytes"), e),
        })
    }

    /// A read-only device copy of `bytes` (kernel parameter tables), made before return.
    pub(crate) fn constant(&self, bytes: &[u8]) -> Result<ClStorage> {
        let mut owned = bytes.to_vec();
        if owned.is_empty() {
            owned.push(0);
        }
        let mem = self.create(CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, owned.len(), owned.as_mut_ptr().cast())?;
        Ok(ClStorage::new(mem, bytes.len(), &self.name, self.id))
    }

    /// Read a whole small tensor (ids, sequence offsets) to the host, after enqueued work.
    pub(crate) fn read(&self, t: &Tensor) -> Result<Vec<u8>> {
        let mut out = vec![0u8; t.desc.bytes()];
        self.download(&t.buf, &mut out)?;
        Ok(out)
    }

    /// Enqueue a device-to-device copy of `bytes` bytes.
    pub(crate) fn copy(&self, src: cl_mem, dst: cl_mem, bytes: usize) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        // SAFETY: both handles are live buffers of this context holding at least `bytes`
        // bytes (checked by `check_supported_launch`); no host memory is involved.
        let ev = unsafe { enqueue_copy_buffer(self.queue.get(), src, dst, 0, 0, bytes, 0, ptr::null()) }
            .map_err(|e| cl(&self.name, "enqueueing a buffer copy", e.into()))?;
        drop(Event::new(ev));
        Ok(())
    }

    /// Enqueue a 1-D kernel over `n` items in work-groups of a fixed size (the global size
    /// rounded up to it; kernels return for items past `n`). A fixed size matters: drivers
    /// such as PoCL compile a kernel once per work-group size, so letting the runtime choose
    /// per launch would recompile for every new length.
    pub(crate) fn run_1d(&self, family: Family, options: &str, symbol: &str, args: &[Arg], n: usize) -> Result<()> {
        let wg = LINEAR_WG.min(self.max_work_group.max(1));
        self.run(family, options, symbol, args, &[n.div_ceil(wg) * wg], Some(&[wg]))
    }

    /// Enqueue kernel `symbol` of `family` (built with `options`) over `global` items in
    /// work-groups of `local` (or the runtime's choice).
    pub(crate) fn run(
        &self,
        family: Family,
        options: &str,
        symbol: &str,
        args: &[Arg],
        global: &[usize],
        local: Option<&[usize]>,
    ) -> Result<()> {
        if global.contains(&0) {
            return Ok(());
        }
        let mut st = self.lock()?;
        let pkey = (family, options.to_string());
        if !st.programs.contains_key(&pkey) {
            let (p, origin) = self.builder.build(&self.context, self.device.id(), family, options)?;
            st.built.push((family, options.to_string(), origin));
            st.programs.insert(pkey.clone(), p);
        }
        let kkey = (family, options.to_string(), symbol.to_string());
        if !st.kernels.contains_key(&kkey) {
            let program = st.programs.get(&pkey).ok_or_else(|| Error::Backend {
                backend: self.name.clone(),
                message: format!("program {} ({options}) vanished from the table", family.file()),
            })?;
            let k = Kernel::create(program, symbol)
                .map_err(|e| cl(&self.name, &format!("creating kernel {symbol} of {}", family.file()), e))?;
            st.kernels.insert(kkey.clone(), k);
        }
        let kernel = st.kernels.get(&kkey).ok_or_else(|| Error::Backend {
            backend: self.name.clone(),
            message: format!("kernel {symbol} vanished from the table"),
        })?;
        for (i, a) in args.iter().enumerate() {
            let at = i as u32;
            // SAFETY: each value is a plain scalar or a live cl_mem of this context, matching
            // the kernel's parameter `i` in type and size (the kernel sources and this
            // crate's launchers are written together; a mismatch is reported by the driver).
            let r = unsafe {
                match a {
                    Arg::Mem(m) => kernel.set_arg(at, m),
                    Arg::U64(v) => kernel.set_arg(at, v),
                    Arg::I32(v) => kernel.set_arg(at, v),
                    Arg::F32(v) => kernel.set_arg(at, v),
                }
            };
            r.map_err(|e| cl(&self.name, &format!("setting argument {i} of {symbol}"), e))?;
        }
        let local_ptr = local.map_or(ptr::null(), |l| l.as_ptr());
        // SAFETY: the kernel's arguments are all set above; `global` (and `local`, when
        // given) hold one size per dimension and outlive the call.
        let ev = unsafe {
            self.queue.enqueue_nd_range_kernel(
                kernel.get(),
                global.len() as u32,
                ptr::null(),
                global.as_ptr(),
                local_ptr,
                &[],
            )
        }
        .map_err(|e| cl(&self.name, &format!("enqueueing {symbol} over {global:?} (local {local:?})"), e))?;
        drop(ev);
        Ok(())
    }
}

impl Backend for OpenClBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn info(&self) -> DeviceInfo {
        let d = &self.device;
        let t = d.dev_type().unwrap_or(0);
        let kind = if is_kind(t, CL_DEVICE_TYPE_GPU) {
            DeviceKind::Gpu
        } else if is_kind(t, CL_DEVICE_TYPE_CPU) {
            DeviceKind::Cpu
        } else {
            DeviceKind::Accelerator
        };
        let version = d.version().unwrap_or_default();
        let t = self.gemm_tiles();
        let mut features: Vec<String> = vec![
            version.clone(),
            format!("driver {}", self.builder.driver),
            format!("gemm tiles {} ({})", t, self.gemm_tiles_source()),
        ];
        features.extend(d.extensions().unwrap_or_default().split_whitespace().map(str::to_string));
        DeviceInfo {
            name: self.name.clone(),
            backend: "opencl",
            device_name: self.device_name.clone(),
            kind,
            compute_units: d.max_compute_units().unwrap_or(0) as usize,
            memory_bytes: d.global_mem_size().unwrap_or(0),
            arch: version.clone(),
            features,
            peak_gflops_f32: self.measured_peak().ok(),
            peak_source: match self.measured_peak() {
                Ok(_) => "measured: float8 FMA chains (probe.cl)".into(),
                Err(e) => format!("not measured: the probe failed: {e}"),
            },
        }
    }

    fn supports(&self, kind: OpKind, dtype: DType) -> Support {
        op_set_support(kind, dtype)
    }

    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        let mem = self.create(CL_MEM_READ_WRITE, bytes, ptr::null_mut())?;
        Ok(Buffer::new(ClStorage::new(mem, bytes, &self.name, self.id)))
    }

    fn upload(&self, dst: &Buffer, src: &[u8]) -> Result<()> {
        let s = self.storage(dst)?;
        if src.len() > dst.bytes() {
            return Err(Error::invalid(format!("upload of {} bytes into a buffer of {}", src.len(), dst.bytes())));
        }
        if src.is_empty() {
            return Ok(());
        }
        // SAFETY: a blocking write: `src` is read in full before the call returns, and the
        // buffer holds at least `src.len()` bytes (checked above).
        let ev = unsafe {
            enqueue_write_buffer(
                self.queue.get(),
                s.raw(),
                CL_BLOCKING,
                0,
                src.len(),
                src.as_ptr().cast(),
                0,
                ptr::null(),
            )
        }
        .map_err(|e| cl(&self.name, &format!("uploading {} bytes", src.len()), e.into()))?;
        drop(Event::new(ev));
        Ok(())
    }

    fn download(&self, src: &Buffer, dst: &mut [u8]) -> Result<()> {
        let s = self.storage(src)?;
        if dst.len() > src.bytes() {
            return Err(Error::invalid(format!("download of {} bytes from a buffer of {}", dst.len(), src.bytes())));
        }
        if dst.is_empty() {
            return self.synchronize();
        }
        // SAFETY: a blocking read on the in-order queue: it runs after all enqueued work and
        // has written `dst` in full before the call returns; the buffer holds at least
        // `dst.len()` bytes (checked above).
        let ev = unsafe {
            enqueue_read_buffer(
                self.queue.get(),
                s.raw(),
                CL_BLOCKING,
                0,
                dst.len(),
                dst.as_mut_ptr().cast(),
                0,
                ptr::null(),
            )
        }
        .map_err(|e| cl(&self.name, &format!("downloading {} bytes", dst.len()), e.into()))?;
        drop(Event::new(ev));
        Ok(())
    }

    fn launch(&self, op: &Op, inputs: &[&Tensor], output: &Tensor) -> Result<()> {
        check_supported_launch(self, op, inputs, output)?;
        crate::launch::launch(self, op, inputs, output)
    }

    fn synchronize(&self) -> Result<()> {
        self.queue.finish().map_err(|e| cl(&self.name, "waiting for the queue", e))
    }
}
