//! Opens devices by name — `cpu`, `cpu-ref`, `opencl:0`, `cuda:0`, `hip:0` — and lists what
//! this build can run. This is the only crate that knows every backend crate; the model,
//! server, harness, CLI and C ABI go through it and never name a backend directly.

use std::sync::Arc;

use omnifuse_core::{Backend, DeviceInfo, Error, Result};
use omnifuse_cpu::{CpuBackend, Tier};

/// Options for opening a device.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenOptions {
    /// CPU threads (0 = one per available core).
    pub threads: usize,
}

/// A backend family and whether this build contains it.
#[derive(Clone, Debug)]
pub struct BackendEntry {
    /// Family name.
    pub family: &'static str,
    /// Compiled into this binary.
    pub compiled: bool,
    /// What it runs on, or why it is not here.
    pub note: &'static str,
}

/// Every backend family omnifuse knows, and whether this build has it.
pub fn backends() -> Vec<BackendEntry> {
    vec![
        BackendEntry { family: "cpu", compiled: true, note: "reference tier (cpu-ref) and fast SIMD tier (cpu)" },
        BackendEntry {
            family: "opencl",
            compiled: false,
            note: "not in this build yet: the OpenCL backend crate is not part of the workspace",
        },
        BackendEntry {
            family: "cuda",
            compiled: false,
            note: "not in this build yet: the CUDA backend crate is not part of the workspace",
        },
        BackendEntry {
            family: "hip",
            compiled: false,
            note: "not in this build yet: the HIP backend crate is not part of the workspace",
        },
    ]
}

/// Open the device called `name` with default options.
pub fn open(name: &str) -> Result<Arc<dyn Backend>> {
    open_with(name, OpenOptions::default())
}

/// Open the device called `name`.
pub fn open_with(name: &str, opts: OpenOptions) -> Result<Arc<dyn Backend>> {
    let (family, index) = match name.split_once(':') {
        Some((f, i)) => (f, Some(i)),
        None => (name, None),
    };
    match (family, index) {
        ("cpu", None | Some("0")) => Ok(Arc::new(CpuBackend::new(Tier::Fast, opts.threads)?)),
        ("cpu-ref", None | Some("0")) => Ok(Arc::new(CpuBackend::new(Tier::Reference, 1)?)),
        ("cpu" | "cpu-ref", Some(i)) => Err(Error::DeviceUnavailable {
            device: name.into(),
            reason: format!("there is one CPU device, cpu:0, not cpu:{i}"),
        }),
        _ => match backends().iter().find(|b| b.family == family) {
            Some(b) => Err(Error::DeviceUnavailable { device: name.into(), reason: b.note.into() }),
            None => Err(Error::invalid(format!(
                "unknown device '{name}': expected cpu, cpu-ref, opencl[:N], cuda[:N] or hip[:N]"
            ))),
        },
    }
}

/// A device this build can see, or the reason a family has none.
#[derive(Clone, Debug)]
pub struct DeviceStatus {
    /// Registry name (`cpu`) or family (`opencl`) when absent.
    pub name: String,
    /// The device's description, or why there is none.
    pub info: Result<DeviceInfo, String>,
}

/// Probe every family: the devices found, and for an absent family, why.
pub fn probe(opts: OpenOptions) -> Vec<DeviceStatus> {
    let mut out = Vec::new();
    for b in backends() {
        let name = if b.family == "cpu" { "cpu".to_string() } else { format!("{}:0", b.family) };
        let info = open_with(&name, opts).map(|dev| dev.info()).map_err(|e| match e {
            Error::DeviceUnavailable { reason, .. } => reason,
            other => other.to_string(),
        });
        out.push(DeviceStatus { name, info });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_or_explain() {
        assert!(open("cpu").is_ok());
        assert!(open("cpu-ref").is_ok());
        let e = open("cpu:3").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("cpu:3"), "{e}");
        let e = open("cuda:0").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("cuda:0") && e.contains("not in this build"), "{e}");
        let e = open("tpu").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("unknown device 'tpu'"), "{e}");
    }
}
