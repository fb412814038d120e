//! Opaque device buffers. A backend allocates them and is the only one that looks inside
//! (by downcasting); everyone else moves them around as handles.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// What a backend stores behind a [`Buffer`]: host memory for the CPU, a device pointer for
/// a GPU. Implementations are `Send + Sync`; synchronisation of their contents is the
/// backend's (on a GPU, the stream order).
pub trait BufferStorage: Any + Send + Sync {
    /// Capacity in bytes.
    fn bytes(&self) -> usize;
    /// The device name this buffer lives on (for error messages).
    fn device(&self) -> &str;
    /// For downcasting by the owning backend.
    fn as_any(&self) -> &dyn Any;
}

/// A cheaply clonable handle to device memory.
#[derive(Clone)]
pub struct Buffer(Arc<dyn BufferStorage>);

impl Buffer {
    /// Wrap a backend's storage.
    pub fn new(storage: impl BufferStorage) -> Self {
        Buffer(Arc::new(storage))
    }

    /// Capacity in bytes.
    pub fn bytes(&self) -> usize {
        self.0.bytes()
    }

    /// The device this buffer lives on.
    pub fn device(&self) -> &str {
        self.0.device()
    }

    /// The backend's own storage type, or `None` when the buffer belongs to another backend.
    pub fn downcast<T: BufferStorage>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref::<T>()
    }

    /// True when both handles refer to the same memory.
    pub fn same(&self, other: &Buffer) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(&other.0))
    }

    /// An address usable to order locks (stable for the buffer's life).
    pub fn addr(&self) -> usize {
        Arc::as_ptr(&self.0) as *const () as usize
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Buffer({} bytes on {})", self.bytes(), self.device())
    }
}
