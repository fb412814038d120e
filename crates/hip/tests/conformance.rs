//! The conformance suite on the HIP backend against the CPU reference tier. Without a HIP
//! device the tests skip, unless `OMNIFUSE_REQUIRE_DEVICE` names `hip`. With a device every
//! op × dtype of the core set must run (the general path of `omnifuse_gpu` covers them all).

omnifuse_testkit::conformance_suite!("hip", omnifuse_hip::HipBackend::open("hip"), require_all);
