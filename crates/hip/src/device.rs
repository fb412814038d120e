//! Is there HIP here? The runtime library, a runtime that initialises, devices, and hiprtc —
//! each answered with a reason rather than a crash.

use std::sync::OnceLock;

use crate::api;

/// The number of HIP devices, or why there are none (library absent, no device).
pub fn runtime() -> Result<usize, String> {
    static STATE: OnceLock<Result<usize, String>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            let rt = api::runtime()?;
            let init = rt.init();
            let (s, n) = rt.device_count();
            if s == api::ERROR_NO_DEVICE || (s == 0 && n <= 0) {
                return Err(format!("no HIP device (libamdhip64 from {} reports none)", rt.path()));
            }
            if init != 0 {
                return Err(format!("no HIP device: hipInit failed: {} ({init})", rt.error_name(init)));
            }
            rt.check(s, "hipGetDeviceCount").map_err(|e| format!("no HIP device: {e}"))?;
            Ok(n as usize)
        })
        .clone()
}

/// One line for `omnifuse info`: the runtime and hiprtc, or what is missing.
pub fn summary() -> String {
    let rt = match runtime() {
        Ok(n) => format!("{n} device(s)"),
        Err(e) => e.trim_start_matches("HIP: ").to_string(),
    };
    let rtc = match crate::hiprtc::get() {
        Ok(h) => format!("hiprtc {}.{} ({})", h.version().0, h.version().1, h.path()),
        Err(_) => "no hiprtc found (set OMNIFUSE_HIPRTC to libhiprtc's path)".to_string(),
    };
    format!("HIP: {rt}; {rtc}")
}
