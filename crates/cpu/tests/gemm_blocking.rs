//! The fast GEMM across its blocking boundaries, which the conformance suite's shapes (at
//! most a few hundred) do not all reach: several K blocks (accumulation into C), several
//! column blocks, several row blocks split across threads, skinny and batched products —
//! each against the reference tier, with every epilogue part on, for every micro-kernel
//! (AVX-512, AVX2+FMA, portable) this CPU can run.

use omnifuse_core::op::{Activation, Epilogue};
use omnifuse_cpu::fast::gemm::gemm_f32_on;
use omnifuse_cpu::features::Isa;
use omnifuse_cpu::kernels::{GemmArgs, Kernels};
use omnifuse_cpu::{CpuBackend, Tier, reference::Reference};
use omnifuse_testkit::cases::Rng;
use omnifuse_testkit::compare::nmse;

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.uniform(-1.0, 1.0)).collect()
}

#[allow(clippy::too_many_arguments)]
fn check(batch: usize, m: usize, n: usize, k: usize, ta: bool, tb: bool, shared: bool, threads: usize) {
    let a = values(batch * m * k, 1);
    let b = values(if shared { k * n } else { batch * k * n }, 2);
    let bias = values(n, 3);
    let residual = values(batch * m * n, 4);
    let ep = Epilogue { scale: 0.75, bias: true, activation: Activation::Gelu, residual: true };
    let g = GemmArgs {
        batch,
        m,
        n,
        k,
        a: &a,
        trans_a: ta,
        b: &b,
        trans_b: tb,
        b_shared: shared,
        epilogue: ep,
        bias: Some(&bias),
        residual: Some(&residual),
        b_pack: None,
        b_wide: None,
    };
    let mut want = vec![0.0f32; batch * m * n];
    Reference.gemm_f32(&g, &mut want);
    let cpu = CpuBackend::new(Tier::Fast, threads).expect("backend");
    // Every micro-kernel this CPU can run, not only the one it would pick.
    for isa in Isa::available() {
        let mut got = vec![f32::NAN; batch * m * n];
        cpu.install(|| gemm_f32_on(isa, &g, &mut got));
        let e = nmse(&got, &want);
        assert!(
            e < 1e-9,
            "{} kernel, batch {batch} {m}x{n}x{k} ta={ta} tb={tb} shared={shared} threads={threads}: NMSE {e:e}",
            isa.name()
        );
    }
}

#[test]
fn many_k_blocks_accumulate_correctly() {
    for threads in [1, 2, 3] {
        check(1, 37, 70, 1000, false, false, true, threads);
        check(1, 29, 45, 777, true, true, true, threads);
    }
}

#[test]
fn many_column_and_row_blocks() {
    check(1, 13, 3100, 300, false, true, true, 2);
    check(1, 530, 40, 64, true, false, true, 2);
    check(1, 300, 333, 400, false, false, true, 4);
}

#[test]
fn skinny_and_single_row_products() {
    for threads in [1, 2] {
        check(1, 1, 1500, 700, false, true, true, threads);
        check(1, 3, 65, 1025, false, false, true, threads);
        check(1, 700, 1, 200, false, false, true, threads);
    }
}

#[test]
fn batched_products_shared_and_not() {
    check(7, 9, 33, 20, false, false, false, 2);
    check(7, 9, 33, 20, true, true, true, 2);
    check(3, 100, 120, 500, false, true, false, 2);
}
