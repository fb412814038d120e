//! Without CUDA the backend explains itself and never panics; with NVRTC present (CI fetches
//! the 12.9 wheel) the compat header and a kernel using it compile for sm_80 and sm_90.

use omnifuse_core::Error;
use omnifuse_cuda::kernel::{Source, Variant};
use omnifuse_cuda::{CudaBackend, device, nvrtc, program};

#[test]
fn opening_without_a_driver_says_what_is_missing() {
    match device::driver() {
        Ok(n) => eprintln!("a CUDA driver with {n} device(s) is present; nothing to check here"),
        Err(why) => {
            assert!(!why.is_empty());
            match CudaBackend::open("cuda:0") {
                Err(Error::DeviceUnavailable { device, reason }) => {
                    assert_eq!(device, "cuda:0");
                    assert_eq!(reason, why);
                }
                Err(other) => panic!("expected DeviceUnavailable, got {other}"),
                Ok(_) => panic!("opened a CUDA device without a driver"),
            }
        }
    }
    let s = device::summary();
    assert!(s.starts_with("CUDA: "), "{s}");
}

#[test]
fn bad_device_names_are_refused_by_name() {
    let e = CudaBackend::open("cuda:zero").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("cuda:zero") && e.contains("cuda:N"), "{e}");
}

#[test]
fn every_source_compiles_where_nvrtc_is_present() {
    let Ok(n) = nvrtc::get() else {
        eprintln!("skip: no NVRTC ({})", nvrtc::get().err().unwrap_or_default());
        return;
    };
    eprintln!("NVRTC {}.{} from {}", n.version().0, n.version().1, n.path());
    for s in Source::ALL {
        let v = Variant::new(s, &[]);
        for target in ["compute_80", "compute_90"] {
            match program::compile(&v, target, None) {
                Ok((ptx, _)) => assert!(String::from_utf8_lossy(&ptx).contains(".target sm_")),
                // A source whose kernels need defines says so with #error; anything else fails.
                Err(e) => assert!(e.to_string().contains("#error"), "{} for {target}: {e}", s.file()),
            }
        }
    }
    let broken = n.compile("__global__ void k( {", "broken.cu", &[], &["--gpu-architecture=compute_80".into()]);
    let e = broken.err().unwrap_or_default();
    assert!(e.contains("broken.cu") && e.contains("did not compile"), "{e}");
}
