//! Turning OpenCL status codes into omnifuse errors that say what was being done.

use omnifuse_core::Error;
use opencl3::error_codes::ClError;

/// An error of the OpenCL backend on `device` while doing `what`.
pub fn cl(device: &str, what: &str, e: ClError) -> Error {
    Error::Backend { backend: device.to_string(), message: format!("{what}: {e} ({})", e.0) }
}
