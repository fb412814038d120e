//! Element types: what a buffer holds and how many bytes each element takes.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// IEEE-754 binary32.
    F32,
    /// IEEE-754 binary16 (`half::f16`); arithmetic accumulates in f32.
    F16,
    /// bfloat16 (`half::bf16`); arithmetic accumulates in f32.
    BF16,
    /// Signed 8-bit integer, used for quantized weights and activations.
    I8,
    /// Signed 32-bit integer: token ids, INT8 GEMM accumulators.
    I32,
}

impl DType {
    /// Every dtype, in a fixed order (used by tables and tests).
    pub const ALL: [DType; 5] = [DType::F32, DType::F16, DType::BF16, DType::I8, DType::I32];

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::I8 => 1,
        }
    }

    /// The lower-case name used on the command line and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I8 => "i8",
            DType::I32 => "i32",
        }
    }

    /// True for the floating-point types.
    pub const fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(DType::F32),
            "f16" | "fp16" | "half" | "float16" => Ok(DType::F16),
            "bf16" | "bfloat16" => Ok(DType::BF16),
            "i8" | "int8" => Ok(DType::I8),
            "i32" | "int32" => Ok(DType::I32),
            other => {
                Err(Error::InvalidArgument(format!("unknown dtype '{other}': expected one of f32, f16, bf16, i8, i32")))
            }
        }
    }
}

/// A Rust element type that maps to a [`DType`].
pub trait Element: bytemuck::Pod + Send + Sync + 'static {
    /// The matching dtype.
    const DTYPE: DType;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
impl Element for half::f16 {
    const DTYPE: DType = DType::F16;
}
impl Element for half::bf16 {
    const DTYPE: DType = DType::BF16;
}
impl Element for i8 {
    const DTYPE: DType = DType::I8;
}
impl Element for i32 {
    const DTYPE: DType = DType::I32;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_and_rejects_unknown() {
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>().ok(), Some(d));
        }
        let err = "f64".parse::<DType>().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("f64") && err.contains("expected"), "{err}");
    }
}
