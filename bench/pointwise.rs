//! Norms and pointwise ops: the fast tier next to the reference tier, same inputs, same run.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use omnifuse_benches::values;
use omnifuse_cpu::kernels::Kernels;
use omnifuse_cpu::{CpuBackend, fast::Fast, reference::Reference};

fn bench(c: &mut Criterion) {
    let cpu = CpuBackend::fast().expect("cpu backend");
    let (rows, n) = (512usize, 768usize);
    let x = values(rows * n, 1);
    let gamma = values(n, 2);
    let beta = values(n, 3);
    let mut out = vec![0.0f32; rows * n];
    let tiers: [(&str, &dyn Kernels); 2] = [("fast", &Fast), ("reference", &Reference)];
    for (name, op) in [("layernorm", 0), ("softmax", 1), ("gelu", 2), ("add_bias", 3)] {
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        group.throughput(Throughput::Elements((rows * n) as u64));
        for (tier, k) in tiers {
            group.bench_with_input(BenchmarkId::new(tier, format!("{rows}x{n}")), &op, |b, &op| {
                b.iter(|| {
                    cpu.install(|| match op {
                        0 => k.layernorm(&x, &gamma, &beta, n, 1e-5, &mut out),
                        1 => k.softmax(&x, n, &mut out),
                        2 => k.gelu(&x, &mut out),
                        _ => k.binary_f32(omnifuse_cpu::kernels::Binary::Add, &x, &gamma, &mut out),
                    })
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
