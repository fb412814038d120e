//! The numeric precision a model runs in, chosen per run (`--precision`) and refined per layer
//! by the config's `[quant]` section.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// How a model's `Linear` layers compute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 weights and activations.
    #[default]
    Fp32,
    /// f16 storage of weights and activations, f32 arithmetic inside every op (the
    /// per-modality-pair attention bias stays f32, as the attention op defines it).
    Fp16,
    /// INT8 weights (symmetric per output channel) and activations (symmetric per token,
    /// quantised on the fly, or per tensor with calibrated static steps when the model
    /// directory holds them), i32 accumulation, dequantised in the GEMM's epilogue; layer
    /// norms, softmax, attention, embeddings and residual sums stay f32.
    Int8,
}

impl Precision {
    /// Name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "fp32" | "f32" => Ok(Precision::Fp32),
            "int8" | "i8" => Ok(Precision::Int8),
            "fp16" | "f16" => Ok(Precision::Fp16),
            other => Err(Error::Config(format!("unknown precision '{other}': expected fp32, fp16 or int8"))),
        }
    }
}
