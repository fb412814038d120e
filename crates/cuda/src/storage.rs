//! Device memory behind a CUDA [`Buffer`]: one `cuMemAlloc` allocation in the backend's
//! context, tagged with the backend that made it so a buffer of another device is refused by
//! name, and freed (with the context bound) when the last handle goes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cudarc::driver::{result, sys};
use omnifuse_core::{Buffer, BufferStorage, Error, Result};

/// A CUDA context handle that may move between threads.
#[derive(Clone, Copy, Debug)]
pub struct Ctx(pub sys::CUcontext);

// SAFETY: a CUcontext is an opaque driver handle; the driver API is thread-safe and every use
// binds it to the calling thread first (`cuCtxSetCurrent`).
unsafe impl Send for Ctx {}
// SAFETY: as above; the handle itself is never mutated.
unsafe impl Sync for Ctx {}

/// The storage of a CUDA buffer.
pub struct CudaStorage {
    ptr: sys::CUdeviceptr,
    bytes: usize,
    device: String,
    owner: u64,
    ctx: Ctx,
    live: Arc<AtomicU64>,
}

impl CudaStorage {
    /// Allocate `bytes` (at least one byte is taken: the driver refuses zero).
    pub fn alloc(ctx: Ctx, bytes: usize, device: &str, owner: u64, live: Arc<AtomicU64>) -> Result<Self> {
        // SAFETY: the context is live for the backend's life, which outlasts this call.
        let ptr = unsafe {
            result::ctx::set_current(ctx.0).map_err(|e| Error::invalid(format!("{device}: {e:?}")))?;
            result::malloc_sync(bytes.max(1))
        }
        .map_err(|e| Error::invalid(format!("{device}: allocating {bytes} bytes failed: {e:?}")))?;
        live.fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(CudaStorage { ptr, bytes, device: device.to_string(), owner, ctx, live })
    }

    /// The device address.
    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    /// The id of the backend that allocated it.
    pub fn owner(&self) -> u64 {
        self.owner
    }
}

impl Drop for CudaStorage {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from cuMemAlloc in `ctx` and is freed once; the primary context
        // is retained by the backend until after every buffer it made is gone, or is
        // re-retained by the driver for the free.
        unsafe {
            let _ = result::ctx::set_current(self.ctx.0);
            let _ = result::free_sync(self.ptr);
        }
        self.live.fetch_sub(self.bytes as u64, Ordering::Relaxed);
    }
}

impl BufferStorage for CudaStorage {
    fn bytes(&self) -> usize {
        self.bytes
    }
    fn device(&self) -> &str {
        &self.device
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The CUDA storage behind `buf`, or an error naming the device it really belongs to.
pub fn storage<'a>(buf: &'a Buffer, device: &str, owner: u64) -> Result<&'a CudaStorage> {
    match buf.downcast::<CudaStorage>() {
        Some(s) if s.owner() == owner => Ok(s),
        _ => Err(Error::invalid(format!("buffer lives on {}, not on {device}", buf.device()))),
    }
}
