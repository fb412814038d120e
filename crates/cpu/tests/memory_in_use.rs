//! The CPU backend counts the bytes of its live buffers: an allocation adds its (64-byte
//! rounded) size, dropping the last handle takes it away, and backends count separately.

#![allow(clippy::unwrap_used)]

use omnifuse_core::Backend;
use omnifuse_cpu::CpuBackend;

#[test]
fn live_buffers_are_counted_until_dropped() {
    let cpu = CpuBackend::reference().unwrap();
    let other = CpuBackend::reference().unwrap();
    let before = cpu.memory_in_use().unwrap();
    let a = cpu.alloc(1000).unwrap();
    let b = cpu.alloc(64).unwrap();
    assert_eq!(cpu.memory_in_use(), Some(before + 1024 + 64));
    assert_eq!(other.memory_in_use(), Some(0), "another backend's buffers are not counted");
    let a2 = a.clone();
    drop(a);
    assert_eq!(cpu.memory_in_use(), Some(before + 1024 + 64), "a clone keeps the buffer alive");
    drop((a2, b));
    assert_eq!(cpu.memory_in_use(), Some(before));
}
