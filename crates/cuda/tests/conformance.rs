//! The conformance suite on the CUDA backend against the CPU reference tier. Without a CUDA
//! device the tests skip, unless `OMNIFUSE_REQUIRE_DEVICE` names `cuda` (the device check
//! script sets it on a GPU machine).

omnifuse_testkit::conformance_suite!("cuda", omnifuse_cuda::CudaBackend::open("cuda"), require_all);
