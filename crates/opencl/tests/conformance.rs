//! The conformance suite on the OpenCL backend (PoCL in CI) against the CPU reference tier.
//! Without an OpenCL device the tests skip, unless `OMNIFUSE_REQUIRE_DEVICE` names `opencl`.

omnifuse_testkit::conformance_suite!("opencl", omnifuse_opencl::OpenClBackend::open("opencl"), require_all);
