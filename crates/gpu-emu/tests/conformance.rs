//! The conformance suite on the emulated GPU against the CPU reference tier: the launch layer
//! of `crates/gpu` and the general-path kernels of `kernels/gpu`, run on the host. Skips (saying
//! why) when there is no C++ compiler, unless `OMNIFUSE_REQUIRE_DEVICE` names `gpu-emu`.
//!
//! Emulation is slow (every CUDA thread is a host thread): CI runs this suite with a reduced
//! case count, `OMNIFUSE_CASES=48` (docs/gpu-emu.md).

omnifuse_testkit::conformance_suite!("gpu-emu", omnifuse_gpu_emu::EmuBackend::open(), require_all);
