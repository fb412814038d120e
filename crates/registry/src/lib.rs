//! Opens devices by name — `cpu`, `cpu-ref`, `opencl[:P[:D]]`, `cuda:0`, `hip:0` — and lists what
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
            compiled: cfg!(feature = "opencl"),
            note: if cfg!(feature = "opencl") {
                "OpenCL devices through libOpenCL loaded at run time (opencl, opencl:P, opencl:P:D; PoCL in CI)"
            } else {
                "not in this build: omnifuse-registry was built without its `opencl` feature"
            },
        },
        BackendEntry {
            family: "cuda",
            compiled: cfg!(feature = "cuda"),
            note: if cfg!(feature = "cuda") {
                "NVIDIA GPUs through libcuda and libnvrtc loaded at run time (cuda, cuda:N)"
            } else {
                "not in this build: omnifuse-registry was built without its `cuda` feature"
            },
        },
        BackendEntry {
            family: "hip",
            compiled: cfg!(feature = "hip"),
            note: if cfg!(feature = "hip") {
                "AMD GPUs through libamdhip64 and hiprtc loaded at run time (hip, hip:N)"
            } else {
                "not in this build: omnifuse-registry was built without its `hip` feature"
            },
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
        #[cfg(feature = "opencl")]
        ("opencl", _) => Ok(Arc::new(omnifuse_opencl::OpenClBackend::open(name)?)),
        #[cfg(feature = "cuda")]
        ("cuda", _) => Ok(Arc::new(omnifuse_cuda::CudaBackend::open(name)?)),
        #[cfg(feature = "hip")]
        ("hip", _) => Ok(Arc::new(omnifuse_hip::HipBackend::open(name)?)),
        _ => match backends().iter().find(|b| b.family == family) {
            Some(b) => Err(Error::DeviceUnavailable { device: name.into(), reason: b.note.into() }),
            None => Err(Error::invalid(format!(
                "unknown device '{name}': expected cpu, cpu-ref, opencl[:P[:D]], cuda[:N] or hip[:N]"
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
        #[cfg(feature = "opencl")]
        if b.family == "opencl" {
            out.extend(probe_opencl(opts));
            continue;
        }
        #[cfg(feature = "cuda")]
        if b.family == "cuda" {
            out.extend(probe_cuda(opts));
            continue;
        }
        #[cfg(feature = "hip")]
        if b.family == "hip" {
            out.extend(probe_hip(opts));
            continue;
        }
        let name = if b.family == "cpu" { "cpu".to_string() } else { format!("{}:0", b.family) };
        let info = open_with(&name, opts).map(|dev| dev.info()).map_err(|e| match e {
            Error::DeviceUnavailable { reason, .. } => reason,
            other => other.to_string(),
        });
        out.push(DeviceStatus { name, info });
    }
    out
}

/// What a tuning run found, as text for reports (the CLI never sees backend types).
#[derive(Clone, Debug)]
pub struct TuneReport {
    /// The device tuned.
    pub device: String,
    /// The file the winner was stored in.
    pub file: String,
    /// One row per candidate: its configuration and its GFLOP/s or why it was rejected.
    pub trials: Vec<(String, Result<f64, String>)>,
    /// The winner's configuration and GFLOP/s.
    pub winner: Option<(String, f64)>,
}

/// Tune the GEMM tiles of device `name` on an f32 `m × k · k × n` product and store the
/// winner for that device. Only OpenCL devices have tunable kernels today.
#[cfg_attr(not(feature = "opencl"), allow(unused_variables))]
pub fn tune_gemm(name: &str, m: usize, n: usize, k: usize, reps: usize) -> Result<TuneReport> {
    let family = name.split(':').next().unwrap_or_default();
    match family {
        #[cfg(feature = "opencl")]
        "opencl" => {
            let b = omnifuse_opencl::OpenClBackend::open(name)?;
            let (trials, win) = omnifuse_opencl::tune::tune_and_store(&b, m, n, k, reps)?;
            let show = |t: &omnifuse_opencl::GemmTiles| t.to_string();
            Ok(TuneReport {
                device: b.name().to_string(),
                file: omnifuse_opencl::tune::tuning_file().display().to_string(),
                trials: trials.iter().map(|t| (show(&t.tiles), t.result.clone())).collect(),
                winner: win.map(|(t, g)| (show(&t), g)),
            })
        }
        _ => Err(Error::invalid(format!(
            "tune: device '{name}' has no tunable kernels; only OpenCL devices (opencl[:P[:D]]) are tuned{}",
            if cfg!(feature = "opencl") { "" } else { ", and this build has no OpenCL backend" }
        ))),
    }
}

/// Every CUDA device (`cuda:N`), or one entry saying what is missing (driver, device, NVRTC).
#[cfg(feature = "cuda")]
fn probe_cuda(opts: OpenOptions) -> Vec<DeviceStatus> {
    match omnifuse_cuda::device::driver() {
        Ok(n) => (0..n)
            .map(|i| {
                let name = format!("cuda:{i}");
                let info = open_with(&name, opts).map(|dev| dev.info()).map_err(|e| e.to_string());
                DeviceStatus { name, info }
            })
            .collect(),
        Err(_) => vec![DeviceStatus { name: "cuda".into(), info: Err(omnifuse_cuda::device::summary()) }],
    }
}

/// Every HIP device (`hip:N`), or one entry saying what is missing (runtime, device).
#[cfg(feature = "hip")]
fn probe_hip(opts: OpenOptions) -> Vec<DeviceStatus> {
    match omnifuse_hip::device::runtime() {
        Ok(n) => (0..n)
            .map(|i| {
                let name = format!("hip:{i}");
                let info = open_with(&name, opts).map(|dev| dev.info()).map_err(|e| e.to_string());
                DeviceStatus { name, info }
            })
            .collect(),
        Err(_) => vec![DeviceStatus { name: "hip".into(), info: Err(omnifuse_hip::device::summary()) }],
    }
}

/// Every GPU kernel module variant (source file under `kernels/gpu`, `-D` defines) the CUDA
/// launch paths may compile: what the compile gates build. Empty without the `cuda` feature.
pub fn gpu_kernel_variants() -> Vec<(String, String)> {
    #[cfg(feature = "cuda")]
    return omnifuse_cuda::variants().iter().map(|v| (v.source.file().to_string(), v.defines.join(" "))).collect();
    #[cfg(not(feature = "cuda"))]
    Vec::new()
}

/// Every GPU kernel module variant (source file under `kernels/gpu`, `-D` defines) the HIP
/// launch paths may compile (the general path, with attention also at the key tiles that fit
/// 64 KiB of LDS). Empty without the `hip` feature.
pub fn hip_kernel_variants() -> Vec<(String, String)> {
    #[cfg(feature = "hip")]
    return omnifuse_hip::variants().iter().map(|v| (v.source.file().to_string(), v.defines.join(" "))).collect();
    #[cfg(not(feature = "hip"))]
    Vec::new()
}

/// One compiled module of the CUDA compile gate.
#[derive(Clone, Debug)]
pub struct GateModule {
    /// The source file under `kernels/gpu`.
    pub source: String,
    /// Its `-D` defines.
    pub defines: String,
    /// The target (`compute_90`).
    pub target: String,
    /// The PTX written.
    pub ptx: String,
    /// The gate fails on any spill in its kernels.
    pub spill_free: bool,
}

/// Compile every CUDA kernel variant the runtime may use to PTX for each arch of `archs`
/// (`80`, `90`) into `dir`, through the runtime's NVRTC path. Needs NVRTC, not a GPU.
#[cfg(feature = "cuda")]
pub fn cuda_compile_gate(
    archs: &[u32],
    dir: &std::path::Path,
    mut progress: impl FnMut(&GateModule) + Send,
) -> Result<Vec<GateModule>> {
    let conv = |e: &omnifuse_cuda::gate::GateEntry| GateModule {
        source: e.variant.source.file().to_string(),
        defines: e.variant.defines.join(" "),
        target: e.target.clone(),
        ptx: e.ptx.display().to_string(),
        spill_free: e.spill_free,
    };
    let all = omnifuse_cuda::gate::compile_all(archs, dir, |e| progress(&conv(e)))?;
    Ok(all.iter().map(conv).collect())
}

/// A GEMM timed on a GPU next to the vendor library, in the same process and stream.
#[derive(Clone, Debug)]
pub struct DeviceGemmBench {
    /// The device and its name.
    pub device: DeviceInfo,
    /// Our median launch time (ms, device events).
    pub ours_ms: f64,
    /// The peer's median (ms), or why it did not run.
    pub peer_ms: std::result::Result<f64, String>,
    /// The peer's name.
    pub peer_name: String,
    /// max |ours − peer| / max |peer|, when the peer ran.
    pub max_rel_diff: Option<f64>,
    /// Timed launches per side.
    pub reps: usize,
}

/// Time the `dtype` GEMM (`f16` or `i8`, B `[N, K]`) of the GPU `name` at `m × n × k` next to
/// cuBLAS. `None` when `name` is not a device with such a peer (CPU and OpenCL devices use
/// the CPU peers of `omnifuse kernels`).
#[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
pub fn device_gemm_bench(
    name: &str,
    dtype: omnifuse_core::DType,
    m: usize,
    n: usize,
    k: usize,
    reps: usize,
) -> Option<Result<DeviceGemmBench>> {
    #[cfg(feature = "cuda")]
    if name.split(':').next() == Some("cuda") {
        let run = || {
            let be = omnifuse_cuda::CudaBackend::open(name)?;
            let r = omnifuse_cuda::bench::gemm(&be, dtype, m, n, k, reps)?;
            Ok(DeviceGemmBench {
                device: be.info(),
                ours_ms: r.ours.median_ms,
                peer_ms: r.peer.map(|t| t.median_ms),
                peer_name: r.peer_name,
                max_rel_diff: r.max_rel_diff,
                reps,
            })
        };
        return Some(run());
    }
    None
}

/// The `ptxas` the CUDA compile gate assembles with (`$OMNIFUSE_PTXAS`, the CI wheel's, or
/// `PATH`'s), if any.
#[cfg(feature = "cuda")]
pub fn cuda_ptxas() -> Option<std::path::PathBuf> {
    omnifuse_cuda::nvrtc::ptxas()
}

/// Without the `cuda` feature there is no `ptxas` to use.
#[cfg(not(feature = "cuda"))]
pub fn cuda_ptxas() -> Option<std::path::PathBuf> {
    None
}

/// Without the `cuda` feature there is nothing to compile.
#[cfg(not(feature = "cuda"))]
pub fn cuda_compile_gate(
    _archs: &[u32],
    _dir: &std::path::Path,
    _progress: impl FnMut(&GateModule) + Send,
) -> Result<Vec<GateModule>> {
    Err(Error::invalid("this build has no CUDA backend (omnifuse-registry without its `cuda` feature)"))
}

/// Every OpenCL device (`opencl:P:D`), or one entry saying why there is none.
#[cfg(feature = "opencl")]
fn probe_opencl(opts: OpenOptions) -> Vec<DeviceStatus> {
    match omnifuse_opencl::list_devices() {
        Ok(list) => list
            .into_iter()
            .map(|d| {
                let info = open_with(&d.name, opts).map(|dev| dev.info()).map_err(|e| match e {
                    Error::DeviceUnavailable { reason, .. } => reason,
                    other => other.to_string(),
                });
                DeviceStatus { name: d.name, info }
            })
            .collect(),
        Err(e) => {
            let reason = match e {
                Error::DeviceUnavailable { reason, .. } => reason,
                other => other.to_string(),
            };
            vec![DeviceStatus { name: "opencl".into(), info: Err(reason) }]
        }
    }
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
        // A CUDA name is answered by the backend: a device, or what is missing — never a panic.
        if let Err(e) = open("cuda:0") {
            assert!(e.to_string().contains("cuda:0"), "{e}");
        }
        let e = open("cuda:x").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("cuda:x"), "{e}");
        // An OpenCL name is answered by the backend: a device, or why there is none — never a panic.
        if let Err(e) = open("opencl:99:0") {
            assert!(e.to_string().contains("opencl:99:0"), "{e}");
        }
        let e = open("tpu").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("unknown device 'tpu'"), "{e}");
    }
}
