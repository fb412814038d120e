//! The packed-weight cache of the CPU backend: a GEMM on a buffer marked constant packs it
//! once and reuses the panels, gives the same results as on an unmarked buffer, never serves
//! one buffer's panels for another (also when a freed buffer's address is reused), and drops
//! them when the buffer is written or freed.

use std::sync::Arc;

use omnifuse_core::op::{Epilogue, GemmSpec, QGemmSpec};
use omnifuse_core::{Backend, HostTensor, Op, Tensor};
use omnifuse_cpu::CpuBackend;

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn linear() -> Op {
    Op::Gemm(GemmSpec { trans_b: true, ..GemmSpec::default() })
}

fn gemm(dev: &CpuBackend, op: &Op, a: &Tensor, w: &Tensor) -> Vec<f32> {
    let out = dev.run_op(op, &[a, w]).expect("gemm runs");
    dev.to_host(&out).expect("download").to_f32()
}

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn a_constant_weight_is_packed_once_and_gives_the_unpacked_results() {
    let dev = CpuBackend::fast().expect("backend");
    let reference = CpuBackend::reference().expect("backend");
    for &(m, n, k) in &[(1, 384, 384), (5, 130, 70), (9, 200, 515), (16, 384, 1536), (32, 1000, 600), (100, 96, 40)] {
        let a = dev.to_device(&HostTensor::from_slice([m, k], &values(m * k, 1)).expect("a")).expect("a");
        let host_w = HostTensor::from_slice([n, k], &values(n * k, 2)).expect("w");
        let plain = dev.to_device(&host_w).expect("w");
        let weight = dev.to_device_constant(&host_w).expect("w");
        let before = dev.pack_stats();
        let unpacked = gemm(&dev, &linear(), &a, &plain);
        assert_eq!(dev.pack_stats().builds, before.builds, "an unmarked buffer is not packed and kept");
        let first = gemm(&dev, &linear(), &a, &weight);
        let after_first = dev.pack_stats();
        assert_eq!(after_first.builds, before.builds + 1, "{m}×{n}×{k}: first use builds");
        assert!(after_first.bytes > before.bytes, "the panels are kept");
        let second = gemm(&dev, &linear(), &a, &weight);
        let after_second = dev.pack_stats();
        assert_eq!(after_second.builds, after_first.builds, "{m}×{n}×{k}: second use does not build");
        assert_eq!(after_second.hits, after_first.hits + 1, "{m}×{n}×{k}: second use hits");
        assert_eq!(first, second, "{m}×{n}×{k}: a hit gives the same result");
        if m > 8 {
            // The same kernel and summation order as packing per call.
            assert_eq!(first, unpacked, "{m}×{n}×{k}: packed once equals packed per call");
        }
        let ra = reference.to_device(&HostTensor::from_slice([m, k], &values(m * k, 1)).expect("a")).expect("a");
        let rw = reference.to_device(&host_w).expect("w");
        let want = gemm(&reference, &linear(), &ra, &rw);
        assert!(max_rel(&first, &want) < 1e-5, "{m}×{n}×{k}: {}", max_rel(&first, &want));
        assert!(max_rel(&unpacked, &want) < 1e-5);
        drop(weight);
        assert_eq!(dev.pack_stats().bytes, before.bytes, "freeing the weight frees its panels");
    }
}

#[test]
fn distinct_weights_and_layouts_never_share_an_entry() {
    let dev = CpuBackend::fast().expect("backend");
    let (m, n, k) = (12, 256, 320);
    let a = dev.to_device(&HostTensor::from_slice([m, k], &values(m * k, 3)).expect("a")).expect("a");
    let w1 = dev.to_device_constant(&HostTensor::from_slice([n, k], &values(n * k, 4)).expect("w")).expect("w");
    let w2 = dev.to_device_constant(&HostTensor::from_slice([n, k], &values(n * k, 5)).expect("w")).expect("w");
    let p1 = dev.to_device(&HostTensor::from_slice([n, k], &values(n * k, 4)).expect("w")).expect("w");
    let p2 = dev.to_device(&HostTensor::from_slice([n, k], &values(n * k, 5)).expect("w")).expect("w");
    let s0 = dev.pack_stats();
    assert_eq!(gemm(&dev, &linear(), &a, &w1), gemm(&dev, &linear(), &a, &p1));
    assert_eq!(gemm(&dev, &linear(), &a, &w2), gemm(&dev, &linear(), &a, &p2));
    assert_eq!(dev.pack_stats().builds, s0.builds + 2, "two weights, two builds");
    // The same bytes read as a [k', n'] B without the transpose are another layout.
    let a2 = dev.to_device(&HostTensor::from_slice([m, n], &values(m * n, 6)).expect("a")).expect("a");
    let w1_plain =
        Tensor::view(w1.buf.clone(), omnifuse_core::TensorDesc::new([n, k], omnifuse_core::DType::F32)).expect("view");
    let got = gemm(&dev, &Op::Gemm(GemmSpec::default()), &a2, &w1_plain);
    let want = gemm(&dev, &Op::Gemm(GemmSpec::default()), &a2, &p1);
    assert_eq!(got, want);
    assert_eq!(dev.pack_stats().builds, s0.builds + 3, "a second layout of one buffer is a second entry");
}

#[test]
fn a_new_weight_at_a_freed_weights_address_is_not_a_stale_hit() {
    let dev = CpuBackend::fast().expect("backend");
    let (m, n, k) = (16, 128, 256);
    let a = dev.to_device(&HostTensor::from_slice([m, k], &values(m * k, 7)).expect("a")).expect("a");
    let mut reused = 0;
    for round in 0..32u64 {
        let host = HostTensor::from_slice([n, k], &values(n * k, 100 + round)).expect("w");
        let w = dev.to_device_constant(&host).expect("w");
        let addr = w.buf.addr();
        let builds = dev.pack_stats().builds;
        let got = gemm(&dev, &linear(), &a, &w);
        assert_eq!(dev.pack_stats().builds, builds + 1, "round {round}: a new weight is packed anew");
        let plain = dev.to_device(&host).expect("w");
        assert_eq!(got, gemm(&dev, &linear(), &a, &plain), "round {round}");
        drop((w, plain));
        // The allocator usually hands the next weight the same address.
        let next = dev.alloc(n * k * 4).expect("alloc");
        if next.addr() == addr {
            reused += 1;
        }
    }
    eprintln!("{reused} of 32 rounds reused a freed weight's address");
}

#[test]
fn writing_a_constant_drops_its_panels() {
    let dev = CpuBackend::fast().expect("backend");
    let (m, n, k) = (20, 96, 64);
    let a = dev.to_device(&HostTensor::from_slice([m, k], &values(m * k, 8)).expect("a")).expect("a");
    let w = dev.to_device_constant(&HostTensor::from_slice([n, k], &values(n * k, 9)).expect("w")).expect("w");
    let _ = gemm(&dev, &linear(), &a, &w);
    let new_values = values(n * k, 10);
    dev.upload(&w.buf, bytemuck::cast_slice(&new_values)).expect("upload");
    assert_eq!(dev.pack_stats().bytes, 0, "an upload drops the panels of the old contents");
    let plain = dev.to_device(&HostTensor::from_slice([n, k], &new_values).expect("w")).expect("w");
    assert_eq!(gemm(&dev, &linear(), &a, &w), gemm(&dev, &linear(), &a, &plain));
}

#[test]
fn concurrent_launches_on_one_weight_agree() {
    let dev = Arc::new(CpuBackend::fast().expect("backend"));
    let (m, n, k) = (24, 512, 384);
    let w = dev.to_device_constant(&HostTensor::from_slice([n, k], &values(n * k, 11)).expect("w")).expect("w");
    let plain = dev.to_device(&HostTensor::from_slice([n, k], &values(n * k, 11)).expect("w")).expect("w");
    let inputs: Vec<Vec<f32>> = (0..6).map(|t| values(m * k, 20 + t)).collect();
    let wants: Vec<Vec<f32>> = inputs
        .iter()
        .map(|x| {
            gemm(&dev, &linear(), &dev.to_device(&HostTensor::from_slice([m, k], x).expect("a")).expect("a"), &plain)
        })
        .collect();
    std::thread::scope(|s| {
        for (x, want) in inputs.iter().zip(&wants) {
            let (dev, w) = (dev.clone(), w.clone());
            s.spawn(move || {
                let a = dev.to_device(&HostTensor::from_slice([m, k], x).expect("a")).expect("a");
                for _ in 0..4 {
                    assert_eq!(&gemm(&dev, &linear(), &a, &w), want);
                }
            });
        }
    });
    let stats = dev.pack_stats();
    assert!(stats.builds >= 1 && stats.hits + stats.builds >= 24, "{stats:?}");
}

#[test]
fn an_int8_weight_is_packed_once_with_exact_results() {
    let dev = CpuBackend::fast().expect("backend");
    for &(m, n, k) in &[(3, 200, 130), (9, 256, 384), (40, 130, 515)] {
        let a = dev.to_device(&HostTensor::from_slice([m, k], &values(m * k, 30)).expect("a")).expect("a");
        let wq: Vec<i8> = values(n * k, 31).iter().map(|v| (v * 254.0) as i8).collect();
        let scale = dev.to_device(&HostTensor::from_slice([n], &vec![0.01f32; n]).expect("s")).expect("s");
        let host_w = HostTensor::from_slice([n, k], &wq).expect("w");
        let weight = dev.to_device_constant(&host_w).expect("w");
        let plain = dev.to_device(&host_w).expect("w");
        let op = Op::QGemm(QGemmSpec { epilogue: Epilogue::default(), requant: None });
        let run = |w: &Tensor| dev.to_host(&dev.run_op(&op, &[&a, w, &scale]).expect("qgemm")).expect("get").to_f32();
        let want = run(&plain);
        let s0 = dev.pack_stats();
        assert_eq!(run(&weight), want, "{m}×{n}×{k}");
        assert_eq!(run(&weight), want, "{m}×{n}×{k}");
        let s1 = dev.pack_stats();
        // Few rows on AVX-512 VNNI read the weight in place; the packed kernels keep panels.
        assert!(s1.builds <= s0.builds + 1, "{m}×{n}×{k}: at most one build");
        if s1.builds == s0.builds + 1 {
            assert_eq!(s1.hits, s0.hits + 1, "{m}×{n}×{k}: the second use hits");
        }
    }
}

#[test]
fn a_narrow_constant_weight_is_widened_once_into_kept_panels() {
    let dev = CpuBackend::fast().expect("backend");
    let reference = CpuBackend::reference().expect("backend");
    for &(m, n, k) in &[(1, 256, 256), (4, 130, 70), (16, 384, 1536), (100, 96, 40)] {
        let (av, w) = (values(m * k, 11), values(n * k, 12));
        let f16s = |v: &[f32]| v.iter().map(|&x| half::f16::from_f32(x)).collect::<Vec<_>>();
        let bf16s = |v: &[f32]| v.iter().map(|&x| half::bf16::from_f32(x)).collect::<Vec<_>>();
        // A GEMM takes A and B of one dtype.
        let narrow = [
            (HostTensor::from_slice([m, k], &f16s(&av)), HostTensor::from_slice([n, k], &f16s(&w))),
            (HostTensor::from_slice([m, k], &bf16s(&av)), HostTensor::from_slice([n, k], &bf16s(&w))),
        ];
        for (a, host_w) in narrow {
            let (a, host_w) = (a.expect("a"), host_w.expect("w"));
            let da = dev.to_device(&a).expect("a");
            let plain = dev.to_device(&host_w).expect("w");
            let weight = dev.to_device_constant(&host_w).expect("w");
            let before = dev.pack_stats();
            let unpacked = gemm(&dev, &linear(), &da, &plain);
            assert_eq!(dev.pack_stats().builds, before.builds, "an unmarked narrow weight is widened per call");
            let first = gemm(&dev, &linear(), &da, &weight);
            let after_first = dev.pack_stats();
            assert_eq!(after_first.builds, before.builds + 1, "{m}×{n}×{k} {:?}: first use builds", host_w.desc);
            let second = gemm(&dev, &linear(), &da, &weight);
            assert_eq!(dev.pack_stats().builds, after_first.builds, "{m}×{n}×{k}: second use does not build");
            assert_eq!(first, second, "{m}×{n}×{k}: a hit gives the same result");
            if m > 8 {
                assert_eq!(first, unpacked, "{m}×{n}×{k}: kept panels equal widening per call");
            }
            let want = gemm(
                &reference,
                &linear(),
                &reference.to_device(&a).expect("a"),
                &reference.to_device(&host_w).expect("w"),
            );
            // Outputs are stored in the narrow dtype: summation order may move a rounding.
            let tol = if host_w.desc.dtype == omnifuse_core::DType::F16 { 1e-3 } else { 8e-3 };
            assert!(max_rel(&first, &want) < tol, "{m}×{n}×{k}: {}", max_rel(&first, &want));
            assert!(max_rel(&unpacked, &want) < tol);
        }
    }
}
