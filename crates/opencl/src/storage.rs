//! Device memory behind an OpenCL [`Buffer`]: one `cl_mem` of the backend's context, tagged
//! with the backend that allocated it so a buffer from another device is refused by name.

use omnifuse_core::{Buffer, BufferStorage, Error, Result};
use opencl3::memory::{Buffer as ClBuffer, ClMem};
use opencl3::types::cl_mem;

/// The storage of an OpenCL buffer.
pub struct ClStorage {
    mem: ClBuffer<u8>,
    bytes: usize,
    device: String,
    owner: u64,
}

impl ClStorage {
    /// Wrap a buffer of at least `bytes` bytes (OpenCL cannot allocate 0 bytes, so an empty
    /// buffer holds one unused byte).
    pub fn new(mem: ClBuffer<u8>, bytes: usize, device: &str, owner: u64) -> Self {
        ClStorage { mem, bytes, device: device.to_string(), owner }
    }

    /// The `cl_mem` handle, for kernel arguments and copies.
    pub fn raw(&self) -> cl_mem {
        self.mem.get()
    }

    /// The id of the backend that allocated it.
    pub fn owner(&self) -> u64 {
        self.owner
    }
}

impl BufferStorage for ClStorage {
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

/// The OpenCL storage behind `buf`, or an error naming the device it really belongs to.
pub fn storage<'a>(buf: &'a Buffer, device: &str, owner: u64) -> Result<&'a ClStorage> {
    match buf.downcast::<ClStorage>() {
        Some(s) if s.owner() == owner => Ok(s),
        _ => Err(Error::invalid(format!("buffer lives on {}, not on {device}", buf.device()))),
    }
}
