//! Device memory behind a HIP [`Buffer`]: one `hipMalloc` allocation on the backend's device,
//! tagged with the backend that made it so a buffer of another device is refused by name,
//! and freed (with its device made current) when the last handle goes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use omnifuse_core::{Buffer, BufferStorage, Error, Result};

use crate::api::{self, Runtime};

/// The storage of a HIP buffer.
pub struct HipStorage {
    ptr: u64,
    bytes: usize,
    device: String,
    ordinal: i32,
    owner: u64,
    live: Arc<AtomicU64>,
}

impl HipStorage {
    /// Allocate `bytes` on device `ordinal` (at least one byte is taken so every buffer has
    /// a distinct address).
    pub fn alloc(rt: &Runtime, ordinal: i32, bytes: usize, device: &str, owner: u64, live: Arc<AtomicU64>) -> Result<Self> {
        rt.set_device(ordinal).map_err(|e| Error::Backend { backend: device.into(), message: e })?;
        let ptr = rt.malloc(bytes.max(1)).map_err(|s| {
            if s == 2 {
                // hipErrorOutOfMemory
                Error::OutOfMemory { device: device.into(), bytes }
            } else {
                Error::Backend { backend: device.into(), message: format!("hipMalloc of {bytes} bytes failed: {}", rt.error_name(s)) }
            }
        })?;
        live.fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(HipStorage { ptr, bytes, device: device.to_string(), ordinal, owner, live })
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

impl Drop for HipStorage {
    fn drop(&mut self) {
        // A storage exists only after the runtime loaded, so this finds it.
        if let Ok(rt) = api::runtime() {
            let _ = rt.set_device(self.ordinal);
            // SAFETY: `ptr` came from hipMalloc on this device and is freed once, here.
            let _ = unsafe { rt.free(self.ptr) };
        }
        self.live.fetch_sub(self.bytes as u64, Ordering::Relaxed);
    }
}

impl BufferStorage for HipStorage {
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

/// The HIP storage behind `buf`, or an error naming the device it really belongs to.
pub fn storage<'a>(buf: &'a Buffer, device: &str, owner: u64) -> Result<&'a HipStorage> {
    match buf.downcast::<HipStorage>() {
        Some(s) if s.owner() == owner => Ok(s),
        _ => Err(Error::invalid(format!("buffer lives on {}, not on {device}", buf.device()))),
    }
}
