//! The Backend trait: what every device (CPU, OpenCL, CUDA, HIP) implements.
//!
//! The model is a stream of work on one device: buffers are allocated explicitly, copies
//! between host and device are explicit, launches are asynchronous in order on the device's
//! stream/queue, and [`Backend::synchronize`] waits for everything enqueued. A backend sees
//! a whole graph through [`Backend::execute`], so it may fuse or capture it; the default
//! launches node by node.

use crate::buffer::Buffer;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::op::{Op, OpKind};
use crate::tensor::{HostTensor, Tensor, TensorDesc};

/// What kind of processor a device is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// A host CPU.
    Cpu,
    /// A discrete or integrated GPU.
    Gpu,
    /// Another accelerator (an NPU, an FPGA through OpenCL).
    Accelerator,
}

impl DeviceKind {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Gpu => "gpu",
            DeviceKind::Accelerator => "accelerator",
        }
    }
}

/// What a device is and what it can do, for `omnifuse info` and for reports.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// The registry name (`cpu`, `opencl:0`, `cuda:0`).
    pub name: String,
    /// The backend family (`cpu`, `opencl`, `cuda`, `hip`).
    pub backend: &'static str,
    /// What the device calls itself (CPU model, GPU name).
    pub device_name: String,
    /// Kind of processor.
    pub kind: DeviceKind,
    /// Cores, compute units or SMs the backend uses.
    pub compute_units: usize,
    /// Memory available to the device in bytes (0 when unknown).
    pub memory_bytes: u64,
    /// Architecture string that keys kernel caches (`x86_64+avx512f`, `sm_90`, `gfx90a`).
    pub arch: String,
    /// Instruction-set or driver features detected.
    pub features: Vec<String>,
    /// Estimated peak f32 GFLOP/s, measured by a short probe where possible.
    pub peak_gflops_f32: Option<f64>,
    /// How the peak was obtained (`measured FMA probe`, `datasheet`).
    pub peak_source: String,
}

/// A backend's answer to "can you run this op with this dtype?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support {
    /// Yes.
    Yes,
    /// No, with the reason (shown in skip lists).
    No(String),
}

impl Support {
    /// True for [`Support::Yes`].
    pub fn is_yes(&self) -> bool {
        matches!(self, Support::Yes)
    }
}

/// A compute device.
pub trait Backend: Send + Sync {
    /// The registry name of this device (`cpu`, `opencl:0`, ...).
    fn name(&self) -> &str;

    /// What the device is.
    fn info(&self) -> DeviceInfo;

    /// Whether `kind` runs with first-input dtype `dtype` here.
    fn supports(&self, kind: OpKind, dtype: DType) -> Support;

    /// Allocate `bytes` of device memory (contents unspecified).
    fn alloc(&self, bytes: usize) -> Result<Buffer>;

    /// Enqueue a copy of `src` into the start of `dst`. `src` may be reused on return.
    fn upload(&self, dst: &Buffer, src: &[u8]) -> Result<()>;

    /// Copy the first `dst.len()` bytes of `src` to the host, after all enqueued work.
    fn download(&self, src: &Buffer, dst: &mut [u8]) -> Result<()>;

    /// Enqueue `op` on `inputs`, writing `output`. Shapes are validated with [`Op::infer`];
    /// `output` must not alias an input.
    fn launch(&self, op: &Op, inputs: &[&Tensor], output: &Tensor) -> Result<()>;

    /// Wait until all enqueued work has finished.
    fn synchronize(&self) -> Result<()>;

    /// Bytes of device memory held by this backend's live buffers now, where the backend
    /// counts them (`None`: it does not).
    fn memory_in_use(&self) -> Option<u64> {
        None
    }

    /// Declare that `buf` holds a constant (a weight) whose contents will not change while it
    /// lives. A backend may then keep forms derived from it next to it — the CPU backend keeps
    /// GEMM operands packed into its kernels' panel layout, built on first use — instead of
    /// deriving them on every launch. Writing to the buffer afterwards stays correct (what was
    /// derived is dropped) but loses the benefit. The default does nothing.
    fn mark_constant(&self, _buf: &Buffer) {}

    /// [`Backend::to_device`] for a constant: upload, then [`Backend::mark_constant`].
    fn to_device_constant(&self, host: &HostTensor) -> Result<Tensor> {
        let t = self.to_device(host)?;
        self.mark_constant(&t.buf);
        Ok(t)
    }

    /// Run the nodes of `graph` given a tensor for every value (inputs, constants and the
    /// planned intermediates). The default launches node by node in order.
    fn execute(&self, graph: &Graph, values: &[Tensor]) -> Result<()> {
        crate::exec::launch_in_order(self, graph, values)
    }

    /// Allocate a device tensor and upload a host tensor into it.
    fn to_device(&self, host: &HostTensor) -> Result<Tensor> {
        let buf = self.alloc(host.desc.bytes())?;
        self.upload(&buf, host.bytes())?;
        Tensor::view(buf, host.desc.clone())
    }

    /// Download a device tensor into a new host tensor.
    fn to_host(&self, t: &Tensor) -> Result<HostTensor> {
        let mut data = vec![0u8; t.desc.bytes()];
        self.download(&t.buf, &mut data)?;
        HostTensor::from_bytes(t.desc.clone(), data)
    }

    /// Allocate an uninitialised device tensor.
    fn empty(&self, desc: &TensorDesc) -> Result<Tensor> {
        desc.shape.numel()?;
        Tensor::view(self.alloc(desc.bytes())?, desc.clone())
    }

    /// Validate, allocate the output and launch: the convenience path for single ops.
    fn run_op(&self, op: &Op, inputs: &[&Tensor]) -> Result<Tensor> {
        let descs: Vec<&TensorDesc> = inputs.iter().map(|t| &t.desc).collect();
        let out_desc = op.infer(&descs)?;
        let out = self.empty(&out_desc)?;
        self.launch(op, inputs, &out)?;
        Ok(out)
    }
}

/// Whether the op set defines `kind` for `dtype` ([`OpKind::dtypes`]): the answer of a
/// backend that implements every op of the core set.
pub fn op_set_support(kind: OpKind, dtype: DType) -> Support {
    if kind.dtypes().contains(&dtype) {
        Support::Yes
    } else {
        Support::No(format!("{kind} is not defined for {dtype}"))
    }
}

/// [`check_launch`], then refuse an op × dtype the backend's `supports` declines, with its
/// reason: the whole guard a backend's `launch` runs first.
pub fn check_supported_launch<B: Backend + ?Sized>(
    backend: &B,
    op: &Op,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<()> {
    check_launch(backend.name(), op, inputs, output)?;
    if let Some(first) = inputs.first()
        && let Support::No(reason) = backend.supports(op.kind(), first.desc.dtype)
    {
        return Err(Error::Unsupported {
            backend: backend.name().to_string(),
            op: op.name().into(),
            dtype: first.desc.dtype,
            reason,
        });
    }
    Ok(())
}

/// Check, before a launch, that `op` fits `inputs` and `output` and that `output` aliases no
/// input: the shared guard every backend's `launch` calls first.
pub fn check_launch(backend: &str, op: &Op, inputs: &[&Tensor], output: &Tensor) -> Result<()> {
    for (i, t) in inputs.iter().chain(std::iter::once(&output)).enumerate() {
        if t.buf.bytes() < t.desc.bytes() {
            let what = if i == inputs.len() { "output".to_string() } else { format!("input {i}") };
            return Err(Error::invalid(format!(
                "{}: {what} is {} ({} bytes) but its buffer holds {} bytes",
                op.name(),
                t.desc,
                t.desc.bytes(),
                t.buf.bytes()
            )));
        }
    }
    let descs: Vec<&TensorDesc> = inputs.iter().map(|t| &t.desc).collect();
    let want = op.infer(&descs)?;
    if want != output.desc {
        return Err(Error::shape(op.name(), format!("output is {}, expected {want}", output.desc)));
    }
    if inputs.iter().any(|t| t.buf.same(&output.buf)) {
        return Err(Error::invalid(format!(
            "{}: on {backend} the output buffer is also an input; in-place launches are not supported",
            op.name()
        )));
    }
    Ok(())
}
