//! Interim stand-in while the packed GEMM lands (delegates to the reference).
use crate::kernels::GemmArgs;
/// f32 GEMM.
pub fn gemm_f32(g: &GemmArgs<f32>, out: &mut [f32]) {
    let r = crate::reference::Reference;
    crate::kernels::Kernels::gemm_f32(&r, g, out)
}
/// i8 GEMM.
pub fn gemm_i8(g: &GemmArgs<i8>, out: &mut [i32]) {
    let r = crate::reference::Reference;
    crate::kernels::Kernels::gemm_i8(&r, g, out)
}
/// Kernel name.
pub fn f32_kernel_name() -> &'static str {
    "interim"
}
