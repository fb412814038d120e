//! Host memory behind a CPU [`Buffer`]: 64-byte-aligned lines under a read/write lock, so a
//! launch may read several buffers while writing one, and misuse is an error, not a race.
//! Each storage also carries the packed forms of its contents when it holds a constant
//! ([`PackSlot`]), cleared whenever it is written.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use omnifuse_core::{Buffer, BufferStorage, Error, Result};

use crate::prepack::{Budget, PackSlot};

/// One cache line; buffers are vectors of these, so every buffer is 64-byte aligned.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub struct Line([u8; 64]);

/// The storage of a CPU buffer.
pub struct CpuStorage {
    lines: RwLock<Vec<Line>>,
    bytes: usize,
    device: String,
    owner: u64,
    /// The owning backend's count of bytes held by live buffers: added to here, taken
    /// from when dropped.
    in_use: Arc<AtomicU64>,
    /// Packed forms of the contents (kept only once the buffer is marked constant).
    pack: PackSlot,
}

impl CpuStorage {
    /// Allocate `bytes` zeroed bytes, counted in `in_use` while the buffer lives; an
    /// allocation that cannot be satisfied is an error. Packed forms are charged to `budget`.
    pub fn new(bytes: usize, device: &str, owner: u64, in_use: Arc<AtomicU64>, budget: Arc<Budget>) -> Result<Self> {
        let n = bytes.div_ceil(64);
        let mut lines = Vec::new();
        lines.try_reserve_exact(n).map_err(|_| Error::OutOfMemory { device: device.to_string(), bytes })?;
        lines.resize(n, Line([0; 64]));
        in_use.fetch_add(held(n), Ordering::Relaxed);
        Ok(CpuStorage {
            lines: RwLock::new(lines),
            bytes,
            device: device.to_string(),
            owner,
            in_use,
            pack: PackSlot::new(budget),
        })
    }

    /// Capacity in bytes.
    pub fn bytes_len(&self) -> usize {
        self.bytes
    }

    /// The id of the backend that allocated this buffer.
    pub fn owner(&self) -> u64 {
        self.owner
    }

    /// Lock for reading.
    pub fn read(&self) -> Result<RwLockReadGuard<'_, Vec<Line>>> {
        self.lines.read().map_err(|_| poisoned(&self.device))
    }

    /// Lock for writing; drops the packed forms of the old contents.
    pub fn write(&self) -> Result<RwLockWriteGuard<'_, Vec<Line>>> {
        let guard = self.lines.write().map_err(|_| poisoned(&self.device))?;
        self.pack.clear();
        Ok(guard)
    }

    /// The packed forms of this buffer's contents.
    pub fn pack(&self) -> &PackSlot {
        &self.pack
    }
}

/// Bytes held by `lines` lines.
fn held(lines: usize) -> u64 {
    (lines * std::mem::size_of::<Line>()) as u64
}

impl Drop for CpuStorage {
    fn drop(&mut self) {
        self.in_use.fetch_sub(held(self.bytes.div_ceil(64)), Ordering::Relaxed);
    }
}

fn poisoned(device: &str) -> Error {
    Error::Backend { backend: device.to_string(), message: "a buffer lock was poisoned by a failed launch".into() }
}

impl BufferStorage for CpuStorage {
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

/// The bytes of a locked buffer.
pub fn bytes(lines: &[Line]) -> &[u8] {
    bytemuck::cast_slice(lines)
}

/// The bytes of a write-locked buffer.
pub fn bytes_mut(lines: &mut [Line]) -> &mut [u8] {
    bytemuck::cast_slice_mut(lines)
}

/// The CPU storage behind `buf`, or an error naming the device it really belongs to.
pub fn storage<'a>(buf: &'a Buffer, device: &str, owner: u64) -> Result<&'a CpuStorage> {
    match buf.downcast::<CpuStorage>() {
        Some(s) if s.owner() == owner => Ok(s),
        _ => Err(Error::invalid(format!("buffer lives on {}, not on {device}", buf.device()))),
    }
}
