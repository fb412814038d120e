//! The one error type of omnifuse. Every message names what was seen and what was expected.

use crate::dtype::DType;

/// Result alias used across omnifuse.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong, from a bad shape to an absent device.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor's shape does not fit the op.
    #[error("{op}: shape mismatch: {detail}")]
    Shape {
        /// The op that rejected the shape.
        op: String,
        /// What was seen and what was expected.
        detail: String,
    },
    /// A tensor's dtype does not fit the op.
    #[error("{op}: dtype mismatch: {detail}")]
    DType {
        /// The op that rejected the dtype.
        op: String,
        /// What was seen and what was expected.
        detail: String,
    },
    /// The backend cannot run this op with this dtype.
    #[error("{backend}: op {op} with dtype {dtype} is not supported: {reason}")]
    Unsupported {
        /// The backend that declined.
        backend: String,
        /// The op.
        op: String,
        /// The dtype asked for.
        dtype: DType,
        /// Why.
        reason: String,
    },
    /// An argument is out of its domain (a bad id, an unknown name, a zero size).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A device cannot be opened or used, with the reason.
    #[error("device {device} unavailable: {reason}")]
    DeviceUnavailable {
        /// The device name asked for.
        device: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// Device memory could not be allocated.
    #[error("out of memory on {device}: {bytes} bytes requested")]
    OutOfMemory {
        /// The device.
        device: String,
        /// Bytes requested.
        bytes: usize,
    },
    /// The graph is malformed (a dangling value, a missing binding).
    #[error("graph: {0}")]
    Graph(String),
    /// A backend-specific failure (driver error, compile error), with its message.
    #[error("{backend}: {message}")]
    Backend {
        /// The backend.
        backend: String,
        /// The driver's or compiler's message.
        message: String,
    },
    /// An I/O error with the path or context it concerns.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Shape error for `op`.
    pub fn shape(op: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Shape { op: op.into(), detail: detail.into() }
    }

    /// Dtype error for `op`.
    pub fn dtype(op: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::DType { op: op.into(), detail: detail.into() }
    }

    /// Invalid-argument error.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Error::InvalidArgument(detail.into())
    }
}
