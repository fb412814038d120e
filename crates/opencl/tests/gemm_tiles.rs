//! Every GEMM tile configuration `tune` may pick, checked on the device against a host f64
//! product at edge-straddling shapes (batched, shared and per-batch B, each transpose
//! combination across the candidates), so a tuned winner is never an unverified kernel.
//! Skips without a device unless `OMNIFUSE_REQUIRE_DEVICE` names `opencl`.

use omnifuse_core::op::{Activation, Epilogue, GemmSpec, Op};
use omnifuse_core::{Backend, HostTensor};
use omnifuse_opencl::OpenClBackend;
use omnifuse_opencl::tune::CANDIDATES;

fn values(n: usize, seed: u64) -> Vec<f32> {
    (0..n).map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 500.0) - 1.0).collect()
}

#[test]
fn every_candidate_tile_config_matches_the_host_product() {
    let b = match OpenClBackend::open("opencl") {
        Ok(b) => b,
        Err(e) => {
            let required = std::env::var("OMNIFUSE_REQUIRE_DEVICE").unwrap_or_default();
            assert!(!required.split(',').any(|r| r.trim() == "opencl"), "opencl is required but unavailable: {e}");
            eprintln!("skipping: {e}");
            return;
        }
    };
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
            epilogue: Epilogue { scale: 0.5, bias: true, activation: Activation::Relu, residual: false },
        };
        let dev =
            |shape: &[usize], v: &[f32]| b.to_device(&HostTensor::from_slice(shape, v).expect("host")).expect("up");
        let (da, db, dbias) = (dev(&a_shape, &a), dev(&b_shape, &bv), dev(&[n], &bias));
        let y = b.run_op(&Op::Gemm(spec), &[&da, &db, &dbias]).expect("gemm");
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
                    let want = (acc * 0.5 + bias[j] as f64).max(0.0);
                    let g = got[(bi * m + i) * n + j] as f64;
                    err += (g - want).powi(2);
                    energy += want * want;
                }
            }
        }
        let nmse = err / energy.max(1e-30);
        assert!(nmse < 1e-10, "{tiles:?} (trans_a={ta}, trans_b={tb}, shared B={shared}): NMSE {nmse:.2e}");
    }
}
