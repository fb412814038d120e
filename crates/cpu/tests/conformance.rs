//! The conformance suite on the CPU fast tier against the reference tier: every op × dtype,
//! no skips allowed.

omnifuse_testkit::conformance_suite!("cpu", omnifuse_cpu::CpuBackend::fast(), require_all);
