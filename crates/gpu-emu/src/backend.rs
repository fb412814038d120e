//! The emulated GPU: an [`omnifuse_core::Backend`] whose "device" memory is host memory and
//! whose kernels are the `kernels/gpu` sources run by [`crate::module`], driven by the same
//! launch layer as CUDA and HIP ([`omnifuse_gpu::launch`]) through [`GpuDevice`].
//!
//! The device it stands for: warps of 32 lanes, no tensor cores (the `*_tc.cu` sources use
//! inline PTX, which is not emulated, so every op takes the general path), 99 KiB of dynamic
//! shared memory per block (the smallest opt-in limit of the CUDA targets), CUDA's grid and
//! block limits. Launches run to completion before `enqueue` returns, so the stream order the
//! launch layer relies on holds trivially and `synchronize` has nothing to wait for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use omnifuse_core::backend::{check_supported_launch, op_set_support};
use omnifuse_core::op::{Op, OpKind};
use omnifuse_core::{Backend, Buffer, BufferStorage, DType, DeviceInfo, DeviceKind, Error, Result, Support, Tensor};
use omnifuse_gpu::GpuDevice;
use omnifuse_gpu::kernel::{Arg, Kernel, Variant};

use crate::compiler;
use crate::module::{self, Module, Param};
use crate::storage::{self, EmuStorage};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Dynamic shared memory one block may use on the emulated device.
pub const MAX_SHARED_BYTES: u32 = 99 * 1024;

/// The emulated device's grid limits: x, then y and z (CUDA's).
const GRID_MAX: [u32; 3] = [i32::MAX as u32, 65535, 65535];
/// The block limits: x, y, z (CUDA's), and 1024 threads in all.
const BLOCK_MAX: [u32; 3] = [1024, 1024, 64];

/// The CPU emulation of a GPU running the `kernels/gpu` general path.
pub struct EmuBackend {
    name: String,
    id: u64,
    compiler: String,
    live: Arc<AtomicU64>,
    modules: Mutex<HashMap<Variant, Arc<Module>>>,
    workspace: Mutex<Option<Buffer>>,
}

impl EmuBackend {
    /// Open the emulated device, named `gpu-emu`. Without a C++ compiler this is
    /// [`Error::DeviceUnavailable`] with the reason.
    pub fn open() -> Result<Self> {
        let cxx = compiler::get().map_err(|reason| Error::DeviceUnavailable { device: "gpu-emu".into(), reason })?;
        Ok(EmuBackend {
            name: "gpu-emu".into(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            compiler: cxx.version.clone(),
            live: Arc::new(AtomicU64::new(0)),
            modules: Mutex::new(HashMap::new()),
            workspace: Mutex::new(None),
        })
    }

    fn storage<'a>(&self, buf: &'a Buffer) -> Result<&'a EmuStorage> {
        storage::storage(buf, &self.name, self.id)
    }

    /// The module of `v`, built or loaded on first use.
    pub fn module(&self, v: &Variant) -> Result<Arc<Module>> {
        if v.source.tensor_core() {
            return Err(Error::invalid(format!(
                "{}: kernels/gpu/{} uses inline PTX, which the emulator cannot run",
                self.name,
                v.source.file()
            )));
        }
        let mut map = self.modules.lock().map_err(|_| Error::invalid("gpu-emu: module table poisoned"))?;
        if let Some(m) = map.get(v) {
            return Ok(m.clone());
        }
        let m = module::load(v.source.file(), v.source.text(), &v.defines)?;
        map.insert(v.clone(), m.clone());
        Ok(m)
    }
}

fn param(a: &Arg) -> Param {
    match *a {
        Arg::Ptr(p) => Param::ptr(p),
        Arg::U64(v) => Param::u64(v),
        Arg::I64(v) => Param::i64(v),
        Arg::I32(v) => Param::i32(v),
        Arg::U32(v) => Param::u32(v),
        Arg::F32(v) => Param::f32(v),
    }
}

impl GpuDevice for EmuBackend {
    /// Check the launch against the device limits, then run it to completion.
    fn enqueue(&self, k: &Kernel, args: &[Arg]) -> Result<()> {
        let refuse = |what: String| Err(Error::invalid(format!("{}: {}: {what}", self.name, k.symbol)));
        if k.grid.iter().zip(GRID_MAX).any(|(&g, m)| g > m) {
            return refuse(format!("grid {:?} exceeds the limits {GRID_MAX:?}", k.grid));
        }
        let threads = k.block.iter().map(|&b| b as u64).product::<u64>();
        if k.block.iter().zip(BLOCK_MAX).any(|(&b, m)| b > m) || threads == 0 || threads > 1024 {
            return refuse(format!("block {:?} exceeds the limits {BLOCK_MAX:?}, 1024 threads", k.block));
        }
        if k.shared_bytes > MAX_SHARED_BYTES {
            return refuse(format!("{} bytes of shared memory; the device allows {MAX_SHARED_BYTES}", k.shared_bytes));
        }
        let params: Vec<Param> = args.iter().map(param).collect();
        self.module(&k.variant)?.launch(&k.symbol, k.grid, k.block, k.shared_bytes, &params)
    }

    fn ptr(&self, t: &Tensor) -> Result<u64> {
        Ok(self.storage(&t.buf)?.ptr() as u64)
    }

    fn copy(&self, src: &Tensor, dst: &Tensor, bytes: usize) -> Result<()> {
        let (s, d) = (self.storage(&src.buf)?, self.storage(&dst.buf)?);
        if bytes > s.bytes() || bytes > d.bytes() {
            return Err(Error::invalid(format!(
                "{}: copy of {bytes} bytes between buffers of {} and {} bytes",
                self.name,
                s.bytes(),
                d.bytes()
            )));
        }
        // SAFETY: both allocations hold at least `bytes` bytes (checked above); `copy` allows
        // them to overlap (the same buffer).
        unsafe { std::ptr::copy(s.ptr(), d.ptr(), bytes) };
        Ok(())
    }

    fn with_workspace<T>(&self, bytes: usize, f: impl FnOnce(u64) -> Result<T>) -> Result<T> {
        let mut ws = self.workspace.lock().map_err(|_| Error::invalid("gpu-emu: workspace lock poisoned"))?;
        if ws.as_ref().is_none_or(|b| b.bytes() < bytes) {
            *ws = None;
            *ws = Some(self.alloc(bytes.next_power_of_two().max(1 << 20))?);
        }
        let buf = ws.as_ref().ok_or_else(|| Error::invalid("gpu-emu: no workspace"))?;
        let base = self.storage(buf)?.ptr() as u64;
        f(base)
    }

    fn warp_size(&self) -> u32 {
        32
    }

    fn max_shared_bytes(&self) -> u32 {
        MAX_SHARED_BYTES
    }

    fn tensor_cores(&self) -> Option<u32> {
        None
    }
}

impl Backend for EmuBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            name: self.name.clone(),
            backend: "gpu-emu",
            device_name: format!("kernels/gpu emulated on the host ({})", self.compiler),
            kind: DeviceKind::Gpu,
            compute_units: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: 0,
            arch: "host-emu".into(),
            features: vec!["warp 32".into(), "no tensor cores".into()],
            peak_gflops_f32: None,
            peak_source: "an emulator: not a performance target".into(),
        }
    }

    fn supports(&self, kind: OpKind, dtype: DType) -> Support {
        op_set_support(kind, dtype)
    }

    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        Ok(Buffer::new(EmuStorage::alloc(bytes, &self.name, self.id, self.live.clone())?))
    }

    fn upload(&self, dst: &Buffer, src: &[u8]) -> Result<()> {
        let d = self.storage(dst)?;
        if src.len() > d.bytes() {
            return Err(Error::invalid(format!("upload of {} bytes into a {}-byte buffer", src.len(), d.bytes())));
        }
        // SAFETY: the destination holds at least `src.len()` bytes; a host slice never
        // overlaps a buffer's allocation.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), d.ptr(), src.len()) };
        Ok(())
    }

    fn download(&self, src: &Buffer, dst: &mut [u8]) -> Result<()> {
        let s = self.storage(src)?;
        if dst.len() > s.bytes() {
            return Err(Error::invalid(format!("download of {} bytes from a {}-byte buffer", dst.len(), s.bytes())));
        }
        // SAFETY: the source holds at least `dst.len()` bytes; no kernel is running (launches
        // complete before they return), and `dst` is a distinct host slice.
        unsafe { std::ptr::copy_nonoverlapping(s.ptr(), dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn launch(&self, op: &Op, inputs: &[&Tensor], output: &Tensor) -> Result<()> {
        check_supported_launch(self, op, inputs, output)?;
        omnifuse_gpu::launch(self, op, inputs, output)
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn memory_in_use(&self) -> Option<u64> {
        Some(self.live.load(Ordering::Relaxed))
    }
}
