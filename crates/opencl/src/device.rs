//! Platform and device discovery, and selection by registry name: `opencl` (the first GPU
//! of any platform, else the first device), `opencl:P` (the first device of platform P),
//! `opencl:P:D` (device D of platform P). Every failure — no libOpenCL, no installable
//! client driver, no device, an index out of range — is
//! [`Error::DeviceUnavailable`] naming what was asked for and what was found.

use std::sync::Mutex;

use omnifuse_core::{Error, Result};
use opencl3::device::{CL_DEVICE_TYPE_ALL, CL_DEVICE_TYPE_GPU, Device};
use opencl3::error_codes::{CL_DEVICE_NOT_FOUND, ClError, DLOPEN_FUNCTION_NOT_AVAILABLE, DLOPEN_RUNTIME_LOAD_FAILED};
use opencl3::platform::{Platform, get_platforms};

/// `CL_PLATFORM_NOT_FOUND_KHR`: the ICD loader found no installable client driver.
const PLATFORM_NOT_FOUND_KHR: i32 = -1001;

/// One device this machine's OpenCL runtime offers.
#[derive(Clone, Debug)]
pub struct DeviceListing {
    /// Registry name, `opencl:P:D`.
    pub name: String,
    /// Platform index P.
    pub platform: usize,
    /// Device index D within the platform.
    pub device: usize,
    /// The platform's name (`Portable Computing Language`).
    pub platform_name: String,
    /// The device's name.
    pub device_name: String,
    /// True for a GPU.
    pub gpu: bool,
}

fn why_none(e: ClError) -> String {
    match e.0 {
        DLOPEN_RUNTIME_LOAD_FAILED => "libOpenCL.so.1 could not be loaded: no OpenCL ICD loader is installed \
             (Debian: ocl-icd-libopencl1; plus a driver such as pocl-opencl-icd)"
            .into(),
        DLOPEN_FUNCTION_NOT_AVAILABLE => "the OpenCL library lacks clGetPlatformIDs".into(),
        PLATFORM_NOT_FOUND_KHR => "the OpenCL loader found no platform: no installable client driver is \
             registered in /etc/OpenCL/vendors (Debian: pocl-opencl-icd for CPUs, or a GPU driver)"
            .into(),
        _ => format!("clGetPlatformIDs failed: {e} ({})", e.0),
    }
}

fn unavailable(device: &str, reason: impl Into<String>) -> Error {
    Error::DeviceUnavailable { device: device.to_string(), reason: reason.into() }
}

/// Discovery is serialised: some drivers (PoCL among them) initialise on the first query
/// and answer concurrent first queries with errors.
static DISCOVERY: Mutex<()> = Mutex::new(());

/// Hold while creating contexts and queues too, for the same reason.
pub(crate) fn discovery_lock() -> std::sync::MutexGuard<'static, ()> {
    DISCOVERY.lock().unwrap_or_else(|e| e.into_inner())
}

fn platforms(device: &str) -> Result<Vec<Platform>> {
    let ps = get_platforms().map_err(|e| unavailable(device, why_none(e)))?;
    if ps.is_empty() {
        return Err(unavailable(device, "the OpenCL loader reports no platform"));
    }
    Ok(ps)
}

/// The devices of `p`; a platform with none answers CL_DEVICE_NOT_FOUND, which is an empty
/// list; any other failure is kept as the reason the platform offers nothing.
fn devices_of(p: &Platform, why: &mut Vec<String>) -> Vec<Device> {
    match p.get_devices(CL_DEVICE_TYPE_ALL) {
        Ok(ids) => ids.into_iter().map(Device::new).collect(),
        Err(ClError(CL_DEVICE_NOT_FOUND)) => Vec::new(),
        Err(e) => {
            why.push(format!("{}: clGetDeviceIDs failed: {e} ({})", p.name().unwrap_or_default(), e.0));
            Vec::new()
        }
    }
}

fn none_offered(why: &[String]) -> String {
    if why.is_empty() {
        "OpenCL platforms were found but none offers a device".into()
    } else {
        format!("OpenCL platforms were found but none offers a device ({})", why.join("; "))
    }
}

/// Every OpenCL device of this machine, or why there is none.
pub fn list_devices() -> Result<Vec<DeviceListing>> {
    let _serial = discovery_lock();
    let mut out = Vec::new();
    let mut why = Vec::new();
    for (pi, p) in platforms("opencl")?.iter().enumerate() {
        let platform_name = p.name().unwrap_or_else(|e| format!("platform {pi} (name unreadable: {e})"));
        for (di, d) in devices_of(p, &mut why).iter().enumerate() {
            out.push(DeviceListing {
                name: format!("opencl:{pi}:{di}"),
                platform: pi,
                device: di,
                platform_name: platform_name.clone(),
                device_name: d.name().unwrap_or_default(),
                gpu: d.dev_type().map(|t| t & CL_DEVICE_TYPE_GPU != 0).unwrap_or(false),
            });
        }
    }
    if out.is_empty() {
        return Err(unavailable("opencl", none_offered(&why)));
    }
    Ok(out)
}

/// Parse `opencl`, `opencl:P` or `opencl:P:D` into optional platform and device indices.
pub fn parse_name(name: &str) -> Result<(Option<usize>, Option<usize>)> {
    let mut parts = name.split(':');
    let bad = || {
        Error::invalid(format!(
            "unknown OpenCL device name '{name}': expected opencl, opencl:P or opencl:P:D (P, D indices)"
        ))
    };
    if parts.next() != Some("opencl") {
        return Err(bad());
    }
    let idx =
        |s: Option<&str>| -> Result<Option<usize>> { s.map(|s| s.parse::<usize>().map_err(|_| bad())).transpose() };
    let p = idx(parts.next())?;
    let d = idx(parts.next())?;
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok((p, d))
}

/// The device `name` designates, with its canonical `opencl:P:D` name.
pub fn select(name: &str) -> Result<(String, Device)> {
    let (p, d) = parse_name(name)?;
    let _serial = discovery_lock();
    let list = platforms(name)?;
    let mut why = Vec::new();
    match p {
        None => {
            let mut first = None;
            for (pi, plat) in list.iter().enumerate() {
                for (di, dev) in devices_of(plat, &mut why).into_iter().enumerate() {
                    let gpu = dev.dev_type().map(|t| t & CL_DEVICE_TYPE_GPU != 0).unwrap_or(false);
                    if gpu {
                        return Ok((format!("opencl:{pi}:{di}"), dev));
                    }
                    if first.is_none() {
                        first = Some((format!("opencl:{pi}:{di}"), dev));
                    }
                }
            }
            first.ok_or_else(|| unavailable(name, none_offered(&why)))
        }
        Some(pi) => {
            let plat = list.get(pi).ok_or_else(|| {
                unavailable(
                    name,
                    format!("there is no platform {pi}: this machine has {} OpenCL platform(s)", list.len()),
                )
            })?;
            let devs = devices_of(plat, &mut why);
            let n = devs.len();
            let di = d.unwrap_or(0);
            devs.into_iter().nth(di).map(|dev| (format!("opencl:{pi}:{di}"), dev)).ok_or_else(|| {
                unavailable(
                    name,
                    format!(
                        "platform {pi} has {n} device(s), so device {di} does not exist{}",
                        why.iter().map(|w| format!(" ({w})")).collect::<String>()
                    ),
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_or_are_refused() {
        assert_eq!(parse_name("opencl").ok(), Some((None, None)));
        assert_eq!(parse_name("opencl:1").ok(), Some((Some(1), None)));
        assert_eq!(parse_name("opencl:0:2").ok(), Some((Some(0), Some(2))));
        for bad in ["cuda:0", "opencl:x", "opencl:0:1:2", "opencl:"] {
            let e = parse_name(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(bad) && e.contains("expected"), "{bad}: {e}");
        }
    }
}
