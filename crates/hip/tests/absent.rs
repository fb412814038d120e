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
fn every_op_of_the_core_set_is_supported_as_on_cuda() {
    use omnifuse_core::DType;
    use omnifuse_core::backend::op_set_support;
    use omnifuse_core::op::OpKind;
    assert!(omnifuse_hip::supports(OpKind::Gelu, DType::F16).is_yes());
    assert!(omnifuse_hip::supports(OpKind::Add, DType::I32).is_yes());
    assert!(omnifuse_hip::supports(OpKind::Gemm, DType::F32).is_yes());
    assert!(omnifuse_hip::supports(OpKind::FusedAttention, DType::BF16).is_yes());
    assert!(omnifuse_hip::supports(OpKind::QGemm, DType::I8).is_yes());
    for kind in OpKind::ALL {
        for dtype in DType::ALL {
            assert_eq!(
                omnifuse_hip::supports(kind, dtype).is_yes(),
                op_set_support(kind, dtype).is_yes(),
                "{kind} {dtype:?}"
            );
        }
    }
    // what the set leaves out is still reported, not run
    assert!(!omnifuse_hip::supports(OpKind::Gelu, DType::I32).is_yes());
}

#[test]
fn hip_variants_are_the_general_path_within_64_kib_of_lds() {
    use omnifuse_hip::kernel::Source;
    let v = omnifuse_hip::variants();
    assert!(v.iter().all(|x| Source::GENERAL.contains(&x.source)), "{v:?}");
    assert!(Source::GENERAL.iter().all(|s| v.iter().any(|x| x.source == *s)));
    // attention at head-dim 128 and 256 also has the smaller key tile a 64 KiB LDS needs
    for d in ["-DDMAX=128", "-DDMAX=256"] {
        let tiles = v.iter().filter(|x| x.source == Source::Attention && x.defines[0] == d).count();
        assert_eq!(tiles, 2, "{d}");
    }
}
