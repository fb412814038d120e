//! Every GEMM tile configuration `tune` may pick, checked on the device against a host f64
//! product at edge-straddling shapes (batched, shared and per-batch B, each transpose
//! combination across the candidates of each variant), so a tuned winner is never an
//! unverified kernel; then every candidate against the default configuration on the rest of
//! the GEMM contract (f16/bf16 storage, GELU, residual, all four transposes, i8 → i32, which
//! keeps the tiled kernel). Skips without a device unless `OMNIFUSE_REQUIRE_DEVICE` names
//! `opencl`.

use half::{bf16, f16};
use omnifuse_core::op::{Activation, Epilogue, GemmSpec, Op};
use omnifuse_core::{Backend, DType, HostTensor, Tensor};
use omnifuse_opencl::tune::CANDIDATES;
use omnifuse_opencl::{GemmTiles, GemmVariant, OpenClBackend};

fn values(n: usize, seed: u64) -> Vec<f32> {
    (0..n).map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 500.0) - 1.0).collect()
}

fn device() -> Option<OpenClBackend> {
    // `@default`: start from the default tiles whatever a tuning file holds.
    match OpenClBackend::open("opencl@default") {
        Ok(b) => Some(b),
        Err(e) => {
            let required = std::env::var("OMNIFUSE_REQUIRE_DEVICE").unwrap_or_default();
            assert!(!required.split(',').any(|r| r.trim() == "opencl"), "opencl is required but unavailable: {e}");
            eprintln!("skipping: {e}");
            None
        }
    }
}

#[test]
fn both_variants_are_candidates() {
    for v in [GemmVariant::Tiled, GemmVariant::Vec] {
        assert!(CANDIDATES.iter().any(|t| t.variant == v), "{v:?}");
    }
}

#[test]
fn every_candidate_tile_config_matches_the_host_product() {
    let Some(b) = device() else { return };
    let (batch, m, n, k) = (2usize, 67usize, 45usize, 33usize);
    for (ci, tiles) in CANDIDATES.iter().enumerate() {
        if b.set_gemm_tiles(*tiles).is_err() {
            eprintln!("{tiles:?} does not fit this device: skipped");
            continue;
        }
        let (ta, tb, shared) = (ci % 2 == 1, (ci / 2) % 2 == 1, ci % 3 == 0);
        let a = values(batch * m * k, ci as u64);
        let bv = values(if shared { k * n } else { batch * k * n }, ci as u64 + 7);
        let bias = values(n, 3);
        let a_shape = if ta { [batch, k, m] } else { [batch, m, k] };
        let b_dims = if tb { [n, k] } else { [k, n] };
        let b_shape: Vec<usize> = if shared { b_dims.to_vec() } else { vec![batch, b_dims[0], b_dims[1]] };
        let spec = GemmSpec {
            trans_a: ta,
            trans_b: tb,
            epilogue: Epilogue { scale: 0.5, bias: true, activation: Activation::Relu, residual: true },
        };
        let res = values(batch * m * n, ci as u64 + 11);
        let dev =
            |shape: &[usize], v: &[f32]| b.to_device(&HostTensor::from_slice(shape, v).expect("host")).expect("up");
        let (da, db, dbias, dres) =
            (dev(&a_shape, &a), dev(&b_shape, &bv), dev(&[n], &bias), dev(&[batch, m, n], &res));
        let y = b.run_op(&Op::Gemm(spec), &[&da, &db, &dbias, &dres]).expect("gemm");
        let got = b.to_host(&y).expect("down").to_f32();
        let (mut err, mut energy) = (0.0f64, 0.0f64);
        for bi in 0..batch {
            for i in 0..m {
                for j in 0..n {
                    let mut acc = 0.0f64;
                    for p in 0..k {
                        let av = a[bi * m * k + if ta { p * m + i } else { i * k + p }];
                        let boff = if shared { 0 } else { bi * k * n };
                        let bw = bv[boff + if tb { j * k + p } else { p * n + j }];
                        acc += av as f64 * bw as f64;
                    }
                    let o = (bi * m + i) * n + j;
                    let want = (acc * 0.5 + bias[j] as f64).max(0.0) + res[o] as f64;
                    let g = got[o] as f64;
                    err += (g - want).powi(2);
                    energy += want * want;
                }
            }
        }
        let nmse = err / energy.max(1e-30);
        assert!(nmse < 1e-10, "{tiles:?} (trans_a={ta}, trans_b={tb}, shared B={shared}): NMSE {nmse:.2e}");
    }
}

fn host(dtype: DType, shape: &[usize], v: &[f32]) -> HostTensor {
    match dtype {
        DType::F16 => HostTensor::from_slice(shape, &v.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>()),
        DType::BF16 => HostTensor::from_slice(shape, &v.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>()),
        DType::I8 => HostTensor::from_slice(shape, &v.iter().map(|&x| (x * 100.0) as i8).collect::<Vec<_>>()),
        _ => HostTensor::from_slice(shape, v),
    }
    .expect("host")
}

#[test]
fn every_candidate_matches_the_default_on_storage_types_and_epilogues() {
    let Some(b) = device() else { return };
    let (batch, m, n, k) = (2usize, 37usize, 29usize, 21usize);
    let run = |tiles: GemmTiles, dtype: DType, ta: bool, tb: bool, act: Activation| -> Vec<f32> {
        b.set_gemm_tiles(tiles).expect("fits");
        let float = dtype != DType::I8;
        let spec = GemmSpec {
            trans_a: ta,
            trans_b: tb,
            epilogue: if float {
                Epilogue { scale: 0.75, bias: true, activation: act, residual: true }
            } else {
                Epilogue::default()
            },
        };
        let a_shape = if ta { [batch, k, m] } else { [batch, m, k] };
        let b_shape = if tb { [n, k] } else { [k, n] };
        let dev = |shape: &[usize], v: &[f32]| b.to_device(&host(dtype, shape, v)).expect("up");
        let mut inputs: Vec<Tensor> = vec![dev(&a_shape, &values(batch * m * k, 1)), dev(&b_shape, &values(k * n, 2))];
        if float {
            inputs.push(dev(&[n], &values(n, 3)));
            inputs.push(dev(&[batch, m, n], &values(batch * m * n, 4)));
        }
        let refs: Vec<&Tensor> = inputs.iter().collect();
        let y = b.run_op(&Op::Gemm(spec), &refs).expect("gemm");
        b.to_host(&y).expect("down").to_f32()
    };
    // Each candidate runs every transpose combination, each with a different storage type
    // (rotating with the candidate), so every variant meets every dtype and combination.
    let dtypes = [DType::F32, DType::F16, DType::BF16, DType::I8];
    let acts = [Activation::Gelu, Activation::None, Activation::Relu, Activation::Gelu];
    for (ci, tiles) in CANDIDATES.into_iter().enumerate() {
        for combo in 0..4 {
            let (ta, tb, act) = (combo % 2 == 1, combo / 2 == 1, acts[(ci + combo) % 4]);
            let dtype = dtypes[(ci + combo) % 4];
            let want = run(GemmTiles::DEFAULT, dtype, ta, tb, act);
            let got = run(tiles, dtype, ta, tb, act);
            let err: f64 = got.iter().zip(&want).map(|(&g, &w)| (g as f64 - w as f64).powi(2)).sum();
            let energy: f64 = want.iter().map(|&w| (w as f64).powi(2)).sum();
            let nmse = err / energy.max(1e-30);
            assert!(nmse < 1e-10, "{tiles} {dtype} trans_a={ta} trans_b={tb} {act:?}: NMSE {nmse:.2e}");
        }
    }
}
