//! f32 GEMM: omnifuse's fast tier next to the `gemm` crate and `matrixmultiply`, same shapes,
//! same threads, same run.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use omnifuse_benches::values;
use omnifuse_core::op::Epilogue;
use omnifuse_cpu::kernels::{GemmArgs, Kernels};
use omnifuse_cpu::{CpuBackend, fast::Fast};

fn bench(c: &mut Criterion) {
    let cpu = CpuBackend::fast().expect("cpu backend");
    let threads = cpu.threads();
    let mut group = c.benchmark_group("gemm_f32");
    group.sample_size(10);
    for n in [128usize, 256, 512, 1024] {
        let (a, b) = (values(n * n, 1), values(n * n, 2));
        let mut out = vec![0.0f32; n * n];
        group.throughput(Throughput::Elements((2 * n * n * n) as u64));
        let args = GemmArgs {
            batch: 1,
            m: n,
            n,
            k: n,
            a: &a,
            trans_a: false,
            b: &b,
            trans_b: false,
            b_shared: true,
            epilogue: Epilogue::default(),
            bias: None,
            residual: None,
            b_pack: None,
            b_wide: None,
        };
        group.bench_with_input(BenchmarkId::new("omnifuse", n), &n, |bch, _| {
            bch.iter(|| cpu.install(|| Fast.gemm_f32(&args, &mut out)))
        });
        group.bench_with_input(BenchmarkId::new("gemm-crate", n), &n, |bch, _| {
            bch.iter(|| {
                cpu.install(|| {
                    // SAFETY: all three buffers hold n·n f32 and the row-major strides stay inside.
                    unsafe {
                        gemm::gemm(
                            n,
                            n,
                            n,
                            out.as_mut_ptr(),
                            1,
                            n as isize,
                            false,
                            a.as_ptr(),
                            1,
                            n as isize,
                            b.as_ptr(),
                            1,
                            n as isize,
                            0.0f32,
                            1.0f32,
                            false,
                            false,
                            false,
                            gemm::Parallelism::Rayon(threads),
                        )
                    }
                })
            })
        });
        group.bench_with_input(BenchmarkId::new("matrixmultiply", n), &n, |bch, _| {
            bch.iter(|| {
                // SAFETY: as above.
                unsafe {
                    matrixmultiply::sgemm(
                        n,
                        n,
                        n,
                        1.0,
                        a.as_ptr(),
                        n as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        out.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
