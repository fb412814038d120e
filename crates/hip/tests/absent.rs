//! Without a HIP runtime or device the backend explains itself and never panics.

use omnifuse_core::Error;
use omnifuse_hip::api::Runtime;
use omnifuse_hip::{HipBackend, device};

#[test]
fn opening_without_a_device_says_what_is_missing() {
    match device::runtime() {
        Ok(n) => eprintln!("a HIP runtime with {n} device(s) is present; nothing to check here"),
        Err(why) => {
            assert!(why.contains("libamdhip64 not found") || why.contains("no HIP device"), "{why}");
            for name in ["hip", "hip:0", "hip:3"] {
                match HipBackend::open(name) {
                    Err(Error::DeviceUnavailable { device, reason }) => {
                        assert!(device.starts_with("hip:"), "{device}");
                        assert_eq!(reason, why);
                    }
                    Err(other) => panic!("expected DeviceUnavailable, got {other}"),
                    Ok(_) => panic!("opened a HIP device without one"),
                }
            }
        }
    }
    let s = device::summary();
    assert!(s.starts_with("HIP: "), "{s}");
    eprintln!("{s}");
}

#[test]
fn an_absent_runtime_library_is_named() {
    let e = Runtime::load(&["/nonexistent/rocm/libamdhip64.so".into(), "libamdhip64-not-here.so".into()])
        .err()
        .unwrap_or_default();
    assert!(e.starts_with("HIP: libamdhip64 not found"), "{e}");
    assert!(e.contains("libamdhip64-not-here.so ("), "{e}");
}

#[test]
fn bad_device_names_are_refused_by_name() {
    for bad in ["hip:zero", "hip:-1", "hipx"] {
        let e = HipBackend::open(bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains(bad) && e.contains("hip:N"), "{e}");
    }
}

#[test]
fn unsupported_ops_are_reported_not_run() {
    use omnifuse_core::DType;
    use omnifuse_core::op::OpKind;
    assert!(omnifuse_hip::supports(OpKind::Gelu, DType::F16).is_yes());
    assert!(omnifuse_hip::supports(OpKind::Add, DType::I32).is_yes());
    assert!(!omnifuse_hip::supports(OpKind::Gelu, DType::I32).is_yes());
    match omnifuse_hip::supports(OpKind::Gemm, DType::F32) {
        omnifuse_core::Support::No(why) => assert!(why.contains("gemm") && why.contains("HIP"), "{why}"),
        omnifuse_core::Support::Yes => panic!("gemm has no HIP path yet"),
    }
}
