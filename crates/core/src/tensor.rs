//! Tensor descriptions, host tensors (plain bytes in host memory) and device tensors (a
//! description over an opaque [`Buffer`]).

use std::fmt;

use crate::buffer::Buffer;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::shape::Shape;

/// Shape and dtype of a dense row-major tensor.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct TensorDesc {
    /// The dimensions.
    pub shape: Shape,
    /// The element type.
    pub dtype: DType,
}

impl TensorDesc {
    /// A description from a shape and dtype.
    pub fn new(shape: impl Into<Shape>, dtype: DType) -> Self {
        TensorDesc { shape: shape.into(), dtype }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.numel_unchecked()
    }

    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.numel().saturating_mul(self.dtype.size())
    }
}

impl fmt::Display for TensorDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, self.shape)
    }
}

/// A tensor in host memory: a description and its little-endian bytes.
#[derive(Clone, PartialEq, Debug)]
pub struct HostTensor {
    /// Shape and dtype.
    pub desc: TensorDesc,
    /// Exactly `desc.bytes()` bytes.
    data: Vec<u8>,
}

impl HostTensor {
    /// A host tensor from typed elements; errors when the count does not match the shape.
    pub fn from_slice<T: Element>(shape: impl Into<Shape>, values: &[T]) -> Result<Self> {
        let desc = TensorDesc::new(shape, T::DTYPE);
        let n = desc.shape.numel()?;
        if n != values.len() {
            return Err(Error::shape(
                "tensor",
                format!("shape {} holds {n} elements, got {}", desc.shape, values.len()),
            ));
        }
        Ok(HostTensor { desc, data: bytemuck::cast_slice(values).to_vec() })
    }

    /// A host tensor from raw bytes; errors when the length does not match.
    pub fn from_bytes(desc: TensorDesc, data: Vec<u8>) -> Result<Self> {
        let want = desc.shape.numel()?.saturating_mul(desc.dtype.size());
        if data.len() != want {
            return Err(Error::shape("tensor", format!("{desc} needs {want} bytes, got {}", data.len())));
        }
        Ok(HostTensor { desc, data })
    }

    /// A zero-filled host tensor.
    pub fn zeros(desc: TensorDesc) -> Result<Self> {
        let n = desc.shape.numel()?.saturating_mul(desc.dtype.size());
        Ok(HostTensor { desc, data: vec![0; n] })
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The elements as `T` (copied, so any alignment of the bytes works); errors when `T`
    /// is not the tensor's dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.desc.dtype {
            return Err(Error::dtype("tensor", format!("tensor is {}, read as {}", self.desc.dtype, T::DTYPE)));
        }
        Ok(bytemuck::pod_collect_to_vec(&self.data))
    }

    /// The elements widened to f32 (floats, i8 and i32 alike).
    pub fn to_f32(&self) -> Vec<f32> {
        crate::tensor::bytes_to_f32(self.desc.dtype, &self.data)
    }
}

/// Decode little-endian elements of `dtype` into f32.
pub fn bytes_to_f32(dtype: DType, data: &[u8]) -> Vec<f32> {
    match dtype {
        DType::F32 => bytemuck::pod_collect_to_vec(data),
        DType::F16 | DType::BF16 => widen_half(dtype == DType::F16, data),
        DType::I8 => data.iter().map(|&b| b as i8 as f32).collect(),
        DType::I32 => data.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32).collect(),
    }
}

/// f16 (or bf16) little-endian bytes to f32: through `half`'s slice conversion (F16C or
/// other SIMD where the CPU has it) when the bytes are aligned, element by element otherwise.
fn widen_half(f16: bool, data: &[u8]) -> Vec<f32> {
    use half::slice::HalfFloatSliceExt;
    let mut out = vec![0.0f32; data.len() / 2];
    if cfg!(target_endian = "little") {
        if f16 && let Ok(h) = bytemuck::try_cast_slice::<u8, half::f16>(data) {
            h.convert_to_f32_slice(&mut out);
            return out;
        }
        if !f16 && let Ok(h) = bytemuck::try_cast_slice::<u8, half::bf16>(data) {
            h.convert_to_f32_slice(&mut out);
            return out;
        }
    }
    for (o, c) in out.iter_mut().zip(data.chunks_exact(2)) {
        *o = if f16 {
            half::f16::from_le_bytes([c[0], c[1]]).to_f32()
        } else {
            half::bf16::from_le_bytes([c[0], c[1]]).to_f32()
        };
    }
    out
}

/// `values` stored into `out` as f16 (or bf16) little-endian bytes, rounding to nearest even:
/// through `half`'s slice conversion (F16C or other SIMD where the CPU has it) when `out` is
/// aligned, element by element otherwise. `out` holds two bytes per value.
pub fn f32_into_half_bytes(f16: bool, values: &[f32], out: &mut [u8]) {
    use half::slice::HalfFloatSliceExt;
    if cfg!(target_endian = "little") {
        if f16 && let Ok(h) = bytemuck::try_cast_slice_mut::<u8, half::f16>(out) {
            h.convert_from_f32_slice(values);
            return;
        }
        if !f16 && let Ok(h) = bytemuck::try_cast_slice_mut::<u8, half::bf16>(out) {
            h.convert_from_f32_slice(values);
            return;
        }
    }
    for (o, &v) in out.chunks_exact_mut(2).zip(values) {
        let b = if f16 { half::f16::from_f32(v).to_le_bytes() } else { half::bf16::from_f32(v).to_le_bytes() };
        o.copy_from_slice(&b);
    }
}

/// A tensor on a device: a description over a buffer at least `desc.bytes()` long.
#[derive(Clone)]
pub struct Tensor {
    /// Shape and dtype.
    pub desc: TensorDesc,
    /// The device buffer.
    pub buf: Buffer,
}

impl Tensor {
    /// View `buf` as a tensor of `desc`; errors when the buffer is too small.
    pub fn view(buf: Buffer, desc: TensorDesc) -> Result<Self> {
        if buf.bytes() < desc.bytes() {
            return Err(Error::invalid(format!(
                "buffer of {} bytes is too small for {desc} ({} bytes)",
                buf.bytes(),
                desc.bytes()
            )));
        }
        Ok(Tensor { desc, buf })
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({} on {})", self.desc, self.buf.device())
    }
}
