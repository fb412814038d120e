//! The conformance suite on the HIP backend against the CPU reference tier. Without a HIP
//! device the tests skip, unless `OMNIFUSE_REQUIRE_DEVICE` names `hip`. Ops without a HIP
//! launch path yet are skipped (the backend declines them in `supports`).

omnifuse_testkit::conformance_suite!("hip", omnifuse_hip::HipBackend::open("hip"), allow_skips);
