//! "Device" memory of the emulator: one host heap allocation per buffer, 256-byte aligned like
//! `cudaMalloc`, whose address is the device address kernels receive. Tagged with the backend
//! that made it, so a buffer of another device is refused by name.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use omnifuse_core::{Buffer, BufferStorage, Error, Result};

/// The storage of an emulated device buffer.
pub struct EmuStorage {
    ptr: NonNull<u8>,
    layout: Layout,
    bytes: usize,
    device: String,
    owner: u64,
    live: Arc<AtomicU64>,
}

// SAFETY: the allocation is owned by this value alone and only reached through raw pointers
// whose users (uploads, downloads, kernels) the backend orders; nothing is tied to a thread.
unsafe impl Send for EmuStorage {}
// SAFETY: as above; `&EmuStorage` exposes only the address and sizes.
unsafe impl Sync for EmuStorage {}

impl EmuStorage {
    /// Allocate `bytes` zeroed bytes (at least one is taken).
    pub fn alloc(bytes: usize, device: &str, owner: u64, live: Arc<AtomicU64>) -> Result<Self> {
        let oom = || Error::OutOfMemory { device: device.to_string(), bytes };
        let layout = Layout::from_size_align(bytes.max(1), 256).map_err(|_| oom())?;
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or_else(oom)?;
        live.fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(EmuStorage { ptr, layout, bytes, device: device.to_string(), owner, live })
    }

    /// The address (the emulated device address).
    pub fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The id of the backend that allocated it.
    pub fn owner(&self) -> u64 {
        self.owner
    }
}

impl Drop for EmuStorage {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed(layout)` and is freed once; kernels run to
        // completion before a launch returns, so none still uses it.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
        self.live.fetch_sub(self.bytes as u64, Ordering::Relaxed);
    }
}

impl BufferStorage for EmuStorage {
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

/// The emulator storage behind `buf`, or an error naming the device it really belongs to.
pub fn storage<'a>(buf: &'a Buffer, device: &str, owner: u64) -> Result<&'a EmuStorage> {
    match buf.downcast::<EmuStorage>() {
        Some(s) if s.owner() == owner => Ok(s),
        _ => Err(Error::invalid(format!("buffer lives on {}, not on {device}", buf.device()))),
    }
}
