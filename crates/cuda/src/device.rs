//! Is there CUDA here? The driver library, a driver that initialises, devices, and NVRTC —
//! each checked before cudarc is asked anything, because cudarc's dynamically loaded entry
//! points panic when their library is absent.

use std::sync::OnceLock;

use cudarc::driver::result;

/// Why the driver cannot be used, or the number of devices.
pub fn driver() -> Result<usize, String> {
    static STATE: OnceLock<Result<usize, String>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            // SAFETY: a presence check: it only tries to dlopen the candidate names.
            if !unsafe { cudarc::driver::sys::is_culib_present() } {
                return Err("no driver found (libcuda.so.1 is not on the loader path)".into());
            }
            result::init().map_err(|e| format!("the CUDA driver did not initialise: {e:?}"))?;
            let n = result::device::get_count().map_err(|e| format!("cuDeviceGetCount failed: {e:?}"))?;
            if n <= 0 {
                return Err("the CUDA driver is present but reports no device".into());
            }
            Ok(n as usize)
        })
        .clone()
}

/// One line for `omnifuse info`: the driver and NVRTC, or what is missing.
pub fn summary() -> String {
    let drv = match driver() {
        Ok(n) => format!("{n} device(s)"),
        Err(e) => e,
    };
    let rtc = match crate::nvrtc::get() {
        Ok(n) => format!("NVRTC {}.{} ({})", n.version().0, n.version().1, n.path()),
        Err(_) => "no NVRTC library found (set OMNIFUSE_NVRTC to libnvrtc's path)".to_string(),
    };
    format!("CUDA: {drv}; {rtc}")
}
