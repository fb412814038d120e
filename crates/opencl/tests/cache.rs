//! The program-binary cache on a real device: a first build compiles from source and stores
//! the binary, a second backend loads it, and corrupt entries — truncated, or well-formed
//! but holding bytes the driver refuses — are rebuilt, never fatal. Skips without a device
//! unless `OMNIFUSE_REQUIRE_DEVICE` names `opencl`.

use omnifuse_core::{Backend, HostTensor, Op};
use omnifuse_opencl::OpenClBackend;
use omnifuse_opencl::program::{Family, Origin, wrap};

fn relu_once(b: &OpenClBackend) -> Vec<f32> {
    let x = HostTensor::from_slice([4], &[-1.0f32, 2.0, -3.0, 4.0]).expect("host tensor");
    let x = b.to_device(&x).expect("upload");
    let y = b.run_op(&Op::Relu, &[&x]).expect("relu");
    b.to_host(&y).expect("download").to_f32()
}

fn origin(b: &OpenClBackend) -> Option<Origin> {
    b.built_programs().iter().find(|(f, _, _)| *f == Family::Pointwise).map(|(_, _, o)| *o)
}

#[test]
fn binaries_are_cached_and_corrupt_entries_rebuilt() {
    let dir = std::env::temp_dir().join(format!("omnifuse-ocl-cache-test-{}", std::process::id()));
    // SAFETY: this test binary has one test, so no other thread reads the environment now.
    unsafe { std::env::set_var("OMNIFUSE_CACHE", &dir) };
    let open = || match OpenClBackend::open("opencl") {
        Ok(b) => Some(b),
        Err(e) => {
            let required = std::env::var("OMNIFUSE_REQUIRE_DEVICE").unwrap_or_default();
            assert!(!required.split(',').any(|r| r.trim() == "opencl"), "opencl is required but unavailable: {e}");
            eprintln!("skipping: {e}");
            None
        }
    };
    let Some(first) = open() else { return };
    assert!(first.builder().cache_path().starts_with(&dir), "{}", first.builder().cache_path().display());
    let want = vec![0.0f32, 2.0, 0.0, 4.0];
    assert_eq!(relu_once(&first), want);
    assert_eq!(origin(&first), Some(Origin::Source));
    let Some(second) = open() else { return };
    assert_eq!(relu_once(&second), want);
    assert_eq!(origin(&second), Some(Origin::Cache));
    let entries: Vec<_> = std::fs::read_dir(first.builder().cache_path())
        .expect("cache dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert!(!entries.is_empty());
    for (corrupt, label) in [(b"garbage".to_vec(), "truncated"), (wrap(b"not a program binary"), "refused")] {
        for p in &entries {
            std::fs::write(p, &corrupt).expect("corrupt the entry");
        }
        let Some(b) = open() else { return };
        assert_eq!(relu_once(&b), want, "{label}");
        assert_eq!(origin(&b), Some(Origin::Source), "{label} entry must be rebuilt from source");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
