//! GEMM timing on the device next to cuBLAS in the same process: both run on the backend's
//! stream on the same inputs, each launch timed with CUDA events, medians reported, and the
//! outputs compared. cuBLAS is the peer only — it never stands in for our kernels.
//!
//! Layouts are the model's: A `[M, K]` row-major, B `[N, K]` (a Linear weight), C `[M, N]`.
//! cuBLAS, column-major, computes Cᵀ = B·Aᵀ as `gemmEx(T, N, n, m, k)`. f16: f16 in and out,
//! f32 compute (`CUBLAS_COMPUTE_32F`). INT8: i8 in, i32 out (`CUBLAS_COMPUTE_32I`); ours is
//! the QGemm op with its dequantising epilogue, so it does a little more work.

use std::ffi::c_void;

use cudarc::cublas::sys as cb;
use cudarc::driver::{result, sys};
use omnifuse_core::op::{GemmSpec, Op, QGemmSpec};
use omnifuse_core::{Backend, DType, Error, HostTensor, Result, Shape, Tensor};

use omnifuse_gpu::GpuDevice;

use crate::backend::CudaBackend;

/// One side's figures.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Median of the timed launches, in ms.
    pub median_ms: f64,
    /// Every timed launch, in ms.
    pub samples_ms: Vec<f64>,
}

/// Ours next to cuBLAS.
#[derive(Clone, Debug)]
pub struct GemmBench {
    /// Our kernel.
    pub ours: Timing,
    /// cuBLAS, or why it could not run.
    pub peer: std::result::Result<Timing, String>,
    /// The peer's name.
    pub peer_name: String,
    /// max |ours − peer| / max |peer| when the peer ran.
    pub max_rel_diff: Option<f64>,
}

fn events() -> Result<(sys::CUevent, sys::CUevent)> {
    let f = sys::CUevent_flags::CU_EVENT_DEFAULT;
    let e = |e| Error::invalid(format!("cuEventCreate failed: {e:?}"));
    Ok((result::event::create(f).map_err(e)?, result::event::create(f).map_err(e)?))
}

/// Time `reps` launches of `f` one by one on the backend's stream (after one warm-up).
fn time(be: &CudaBackend, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<Timing> {
    be.bind()?;
    f()?;
    let (start, end) = events()?;
    let mut samples = Vec::with_capacity(reps);
    let res = (|| {
        for _ in 0..reps.max(1) {
            let err = |e| Error::invalid(format!("event timing failed: {e:?}"));
            // SAFETY: both events and the stream belong to the bound context.
            unsafe { result::event::record(start, be.stream()) }.map_err(err)?;
            f()?;
            // SAFETY: as above; `end` is waited on before its time is read.
            let ms = unsafe {
                result::event::record(end, be.stream()).map_err(err)?;
                result::event::synchronize(end).map_err(err)?;
                result::event::elapsed(start, end).map_err(err)?
            };
            samples.push(ms as f64);
        }
        Ok::<(), Error>(())
    })();
    // SAFETY: the events were created above and are not used after this.
    unsafe {
        let _ = result::event::destroy(start);
        let _ = result::event::destroy(end);
    }
    res?;
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(Timing { median_ms: sorted[sorted.len() / 2], samples_ms: samples })
}

struct Cublas(cb::cublasHandle_t);

impl Cublas {
    fn new(be: &CudaBackend) -> std::result::Result<Cublas, String> {
        // SAFETY: a presence check only tries to dlopen candidate names.
        if !unsafe { cb::is_culib_present() } {
            return Err("libcublas not found on the loader path".into());
        }
        be.bind().map_err(|e| e.to_string())?;
        let mut h: cb::cublasHandle_t = std::ptr::null_mut();
        // SAFETY: `h` is valid for one write; the library is present (checked above).
        let s = unsafe { cb::cublasCreate_v2(&mut h) };
        if s != cb::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            return Err(format!("cublasCreate failed: {s:?}"));
        }
        // SAFETY: `h` is live; the stream belongs to the bound context.
        let s = unsafe { cb::cublasSetStream_v2(h, be.stream() as cb::cudaStream_t) };
        if s != cb::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            return Err(format!("cublasSetStream failed: {s:?}"));
        }
        Ok(Cublas(h))
    }
}

impl Drop for Cublas {
    fn drop(&mut self) {
        // SAFETY: the handle came from cublasCreate and is destroyed once.
        unsafe { cb::cublasDestroy_v2(self.0) };
    }
}

fn max_rel_diff(ours: &[f32], peer: &[f32]) -> f64 {
    let scale = peer.iter().fold(0.0f64, |m, &x| m.max((x as f64).abs())).max(1e-30);
    ours.iter().zip(peer).fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs())) / scale
}

/// Deterministic small values in [−1, 1) (a cheap LCG; timing does not need better).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn upload(be: &CudaBackend, dtype: DType, shape: &[usize], vals: &[f32]) -> Result<Tensor> {
    let shape = Shape::new(shape.to_vec());
    let h = match dtype {
        DType::F16 => HostTensor::from_slice(shape, &vals.iter().map(|&v| half::f16::from_f32(v)).collect::<Vec<_>>())?,
        DType::I8 => HostTensor::from_slice(shape, &vals.iter().map(|&v| v as i8).collect::<Vec<_>>())?,
        _ => HostTensor::from_slice(shape, vals)?,
    };
    be.to_device(&h)
}

/// Time our `dtype` GEMM (`f16` or `i8`) at `m × n × k` against cuBLAS, `reps` launches each.
pub fn gemm(be: &CudaBackend, dtype: DType, m: usize, n: usize, k: usize, reps: usize) -> Result<GemmBench> {
    let (a_vals, b_vals) = (values(m * k, 1), values(n * k, 2));
    let cublas = Cublas::new(be);
    let gemm_ex = |a: &Tensor, b: &Tensor, c: &Tensor, ty: cb::cudaDataType, cty, compute| -> Result<()> {
        let Ok(h) = &cublas else { return Ok(()) };
        let (alpha_f, beta_f, alpha_i, beta_i) = (1.0f32, 0.0f32, 1i32, 0i32);
        let (alpha, beta): (*const c_void, *const c_void) = if compute == cb::cublasComputeType_t::CUBLAS_COMPUTE_32I {
            ((&alpha_i as *const i32).cast(), (&beta_i as *const i32).cast())
        } else {
            ((&alpha_f as *const f32).cast(), (&beta_f as *const f32).cast())
        };
        let (pa, pb, pc) = (be.ptr(a)?, be.ptr(b)?, be.ptr(c)?);
        // SAFETY: the three buffers hold m·k, n·k and m·n elements of the stated types on this
        // device; alpha/beta live across the call (host pointer mode); the call is enqueued
        // on our stream.
        let s = unsafe {
            cb::cublasGemmEx(
                h.0,
                cb::cublasOperation_t::CUBLAS_OP_T,
                cb::cublasOperation_t::CUBLAS_OP_N,
                n as i32,
                m as i32,
                k as i32,
                alpha,
                pb as *const c_void,
                ty,
                k as i32,
                pa as *const c_void,
                ty,
                k as i32,
                beta,
                pc as *mut c_void,
                cty,
                n as i32,
                compute,
                cb::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT_TENSOR_OP,
            )
        };
        if s == cb::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            Ok(())
        } else {
            Err(Error::invalid(format!("cublasGemmEx failed: {s:?}")))
        }
    };
    match dtype {
        DType::F16 => {
            let a = upload(be, DType::F16, &[m, k], &a_vals)?;
            let b = upload(be, DType::F16, &[n, k], &b_vals)?;
            let op = Op::Gemm(GemmSpec { trans_b: true, ..Default::default() });
            let out = be.run_op(&op, &[&a, &b])?;
            let ours = time(be, reps, || be.launch(&op, &[&a, &b], &out))?;
            let c = be.empty(&out.desc)?;
            let (ty, cty, comp) = (
                cb::cudaDataType::CUDA_R_16F,
                cb::cudaDataType::CUDA_R_16F,
                cb::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            );
            let peer = match &cublas {
                Ok(_) => time(be, reps, || gemm_ex(&a, &b, &c, ty, cty, comp)).map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            };
            let diff = if peer.is_ok() {
                Some(max_rel_diff(&be.to_host(&out)?.to_f32(), &be.to_host(&c)?.to_f32()))
            } else {
                None
            };
            Ok(GemmBench { ours, peer, peer_name: "cuBLAS gemmEx f16 (f32 compute)".into(), max_rel_diff: diff })
        }
        DType::I8 => {
            let a = upload(be, DType::I8, &[m, k], &a_vals.iter().map(|v| (v * 127.0).round()).collect::<Vec<_>>())?;
            let b = upload(be, DType::I8, &[n, k], &b_vals.iter().map(|v| (v * 127.0).round()).collect::<Vec<_>>())?;
            let b_scale = upload(be, DType::F32, &[n], &vec![1.0; n])?;
            let a_scale = upload(be, DType::F32, &[m], &vec![1.0; m])?;
            let op = Op::QGemm(QGemmSpec::default());
            let ins = [&a, &b, &b_scale, &a_scale];
            let out = be.run_op(&op, &ins)?;
            let ours = time(be, reps, || be.launch(&op, &ins, &out))?;
            let c = be.empty(&omnifuse_core::TensorDesc::new(Shape::new(vec![m, n]), DType::I32))?;
            let (ty, cty, comp) = (
                cb::cudaDataType::CUDA_R_8I,
                cb::cudaDataType::CUDA_R_32I,
                cb::cublasComputeType_t::CUBLAS_COMPUTE_32I,
            );
            let peer = match &cublas {
                Ok(_) => time(be, reps, || gemm_ex(&a, &b, &c, ty, cty, comp)).map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            };
            let diff = if peer.is_ok() {
                Some(max_rel_diff(&be.to_host(&out)?.to_f32(), &be.to_host(&c)?.to_f32()))
            } else {
                None
            };
            Ok(GemmBench { ours, peer, peer_name: "cuBLAS gemmEx i8 → i32 (32I compute)".into(), max_rel_diff: diff })
        }
        other => Err(Error::invalid(format!("the CUDA GEMM benchmark takes f16 or i8, not {other}"))),
    }
}
