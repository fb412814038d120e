//! hiprtc needs no GPU: where the library is present (ROCm 5 carries it inside libamdhip64,
//! ROCm 6 as libhiprtc), the compat header and kernels using it compile for AMD archs.

use omnifuse_hip::kernel::{HEADER, Source, Variant};
use omnifuse_hip::program::{self, RTC_ARCHS};
use omnifuse_hip::{hiprtc, variants};

const PROBE: &str = r#"#include "omnifuse_gpu.h"
extern "C" __global__ void probe_gelu_f16(const of_f16* x, of_f16* y, float* sums, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = i < n ? of_load_f32<of_f16>(x, i) : 0.0f;
    if (i < n) of_store_f32<of_f16>(y, i, of_act(v, 2));
    float s = of_warp_sum(v);
    if (threadIdx.x % OF_WARP == 0) sums[i / OF_WARP] = s;
}
"#;

fn is_elf(image: &[u8]) -> bool {
    image.starts_with(b"\x7fELF")
}

#[test]
fn the_compat_header_compiles_for_every_checked_arch() {
    let Ok(h) = hiprtc::get() else {
        eprintln!("skip: no hiprtc ({})", hiprtc::get().err().unwrap_or_default());
        return;
    };
    eprintln!("hiprtc {}.{} from {}", h.version().0, h.version().1, h.path());
    for arch in RTC_ARCHS {
        let opts = vec![format!("--offload-arch={arch}"), "-O3".into(), "-std=c++17".into()];
        let out = h.compile(PROBE, "probe.cu", &[HEADER], &opts).unwrap_or_else(|e| panic!("{arch}: {e}"));
        assert!(is_elf(&out.image), "{arch}: not an ELF code object");
        assert!(out.image.windows(14).any(|w| w == b"probe_gelu_f16"), "{arch}: symbol missing");
    }
    let broken = h.compile("__global__ void k( {", "broken.cu", &[], &["--offload-arch=gfx90a".into()]);
    let e = broken.err().unwrap_or_default();
    assert!(e.contains("broken.cu") && e.contains("did not compile"), "{e}");
}

#[test]
fn every_source_and_runtime_variant_compiles_where_hiprtc_is_present() {
    if hiprtc::get().is_err() {
        eprintln!("skip: no hiprtc");
        return;
    }
    let arch = "gfx90a";
    let mut all: Vec<Variant> = Source::ALL.iter().map(|&s| Variant::new(s, &[])).collect();
    all.extend(variants());
    for v in all {
        let t = std::time::Instant::now();
        match program::compile(&v, arch, 0, None) {
            Ok((image, _)) => {
                assert!(is_elf(&image), "{}", v.source.file());
                eprintln!("{} {:?}: {} bytes in {:.2?}", v.source.file(), v.defines, image.len(), t.elapsed());
            }
            // A source whose kernels need defines says so with #error; anything else fails.
            Err(e) => assert!(e.to_string().contains("#error"), "{} for {arch}: {e}", v.source.file()),
        }
    }
}
