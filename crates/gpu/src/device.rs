//! What the launch layer needs from a GPU backend: enqueueing a compiled kernel, device
//! addresses of tensors, device-to-device copies, small blocking reads for data-dependent
//! checks, a stream-ordered scratch area, and the few device limits launch shapes depend on.

use omnifuse_core::{Backend, Result, Tensor};

use crate::kernel::{Arg, Kernel};

/// A GPU device the launch layer can drive (CUDA and HIP implement it). Allocation, uploads,
/// downloads and synchronisation come from [`Backend`].
pub trait GpuDevice: Backend {
    /// Compile `k`'s module for this device (once), then enqueue `k` with `args` on the
    /// device's stream. Refuses a launch the device cannot take (too many threads, too much
    /// shared memory) with an error naming the kernel.
    fn enqueue(&self, k: &Kernel, args: &[Arg]) -> Result<()>;

    /// The device address of `t`'s buffer (an error for a buffer of another device).
    fn ptr(&self, t: &Tensor) -> Result<u64>;

    /// Enqueue a device-to-device copy of `bytes` from the start of `src` to `dst`.
    fn copy(&self, src: &Tensor, dst: &Tensor, bytes: usize) -> Result<()>;

    /// Run `f` with the device address of a scratch area of at least `bytes` bytes: work
    /// enqueued inside `f` runs in stream order after every earlier user's work, and no other
    /// thread's work lands between the kernels of one user.
    fn with_workspace<T>(&self, bytes: usize, f: impl FnOnce(u64) -> Result<T>) -> Result<T>;

    /// Lanes per warp (wavefront): 32 on NVIDIA and RDNA, 64 on CDNA.
    fn warp_size(&self) -> u32;

    /// The most dynamic shared memory (LDS) one block may use, in bytes (the opt-in limit on
    /// CUDA).
    fn max_shared_bytes(&self) -> u32;

    /// The compute capability (`major·10 + minor`) when the tensor-core kernels of
    /// `kernels/gpu/*_tc.cu` may run here, `None` where they are not built (HIP).
    fn tensor_cores(&self) -> Option<u32>;

    /// Multiprocessors (compute units): tile choices aim to fill them.
    fn compute_units(&self) -> usize {
        self.info().compute_units
    }

    /// Read an i32 tensor back (blocking): for small data-dependent checks.
    fn read_i32(&self, t: &Tensor) -> Result<Vec<i32>> {
        Ok(bytemuck::pod_collect_to_vec(&read_bytes(self, t)?))
    }

    /// Read an i8 tensor back (blocking): for small data-dependent checks.
    fn read_i8(&self, t: &Tensor) -> Result<Vec<i8>> {
        Ok(bytemuck::pod_collect_to_vec(&read_bytes(self, t)?))
    }
}

/// The bytes of `t`, downloaded (blocking).
fn read_bytes<D: GpuDevice + ?Sized>(be: &D, t: &Tensor) -> Result<Vec<u8>> {
    let mut v = vec![0u8; t.desc.bytes()];
    be.download(&t.buf, &mut v)?;
    Ok(v)
}
