//! Measures the OpenCL backend's fixed costs on this device: a tiny launch, a synchronize,
//! a small upload and download, and the peak probe behind `omnifuse info`.

use std::time::Instant;

use omnifuse_core::{Backend, HostTensor, Op, Result};
use omnifuse_opencl::OpenClBackend;

fn main() -> Result<()> {
    let b = OpenClBackend::open("opencl")?;
    let x = b.to_device(&HostTensor::from_slice([64], &[1.0f32; 64])?)?;
    let y = b.run_op(&Op::Relu, &[&x])?;
    b.synchronize()?;
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        b.launch(&Op::Relu, &[&x], &y)?;
    }
    b.synchronize()?;
    println!("launch (queued): {:.1} us each", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    let t = Instant::now();
    for _ in 0..n {
        b.launch(&Op::Relu, &[&x], &y)?;
        b.synchronize()?;
    }
    println!("launch + synchronize: {:.1} us each", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    let t = Instant::now();
    let mut host = [0u8; 256];
    for _ in 0..n {
        b.download(&y.buf, &mut host)?;
    }
    println!("download 256 B: {:.1} us each", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    let t = Instant::now();
    for _ in 0..n {
        b.upload(&y.buf, &host)?;
    }
    println!("upload 256 B: {:.1} us each", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    let t = Instant::now();
    for _ in 0..n {
        b.alloc(256)?;
    }
    println!("alloc 256 B: {:.1} us each", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    let t = Instant::now();
    let info = b.info();
    println!(
        "peak f32: {:?} GFLOP/s ({}), probe took {:.2} s",
        info.peak_gflops_f32,
        info.peak_source,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
