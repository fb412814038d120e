//! The GEMM epilogue and the activation math shared by the fast kernels:
//! `out = act(scale·acc + bias) + residual`, applied to one output row segment at a time.

use omnifuse_core::op::{Activation, Epilogue};

/// Evaluate a polynomial with coefficients in increasing order (Horner).
#[inline(always)]
fn horner(s: f32, c: &[f32]) -> f32 {
    c.iter().rev().fold(0.0, |acc, &ci| acc * s + ci)
}

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;

/// 1.5·2²³: adding it to a float of magnitude below 2²² rounds that float to an integer
/// (ties to even) and leaves the integer in the low mantissa bits.
const ROUNDER: f32 = 12_582_912.0;

/// e^x to ~2 ulp, branch-free and free of float→int casts (which the compiler scalarises), so
/// loops over it vectorise: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-6 polynomial, 2^n
/// by writing n + 127 into the exponent bits. Saturates below −87.3 (≈1e-38, not 0) and
/// above 88 (≈1.6e38).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.0);
    let t = x * LOG2E + ROUNDER;
    let n = t - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = horner(r, &[1.0, 1.0, 0.5, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0]);
    // low bits of t hold n (two's complement within the mantissa): n + 127 is the exponent.
    let e = t.to_bits().wrapping_sub(ROUNDER.to_bits()).wrapping_add(127) << 23;
    p * f32::from_bits(e)
}

/// Coefficients of the Chebyshev-fitted `erfc(z) = t·exp(−z² + P(t))`, `t = 1/(1 + z/2)`
/// (the classic fit with fractional error below 1.2e-7 for every z ≥ 0).
const ERFC: [f32; 10] = [
    -1.265_512_2,
    1.000_023_7,
    0.374_091_96,
    0.096_784_18,
    -0.186_288_06,
    0.278_868_07,
    -1.135_204,
    1.488_515_9,
    -0.822_152_2,
    0.170_872_77,
];

/// erfc(z) for z ≥ 0, accurate in relative terms over the whole tail.
#[inline(always)]
pub fn erfc_pos(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    t * exp(-z * z + horner(t, &ERFC))
}

/// GELU, erf form `0.5·x·(1 + erf(x/√2))`, computed as `x·(1 − erfc(z)/2)` for x ≥ 0 and
/// `x·erfc(z)/2` for x < 0 with z = |x|/√2: one branch-free formula with no cancellation in
/// the negative tail.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    let c = 0.5 * erfc_pos(x.abs() * std::f32::consts::FRAC_1_SQRT_2);
    x * if x >= 0.0 { 1.0 - c } else { c }
}

/// Apply `act` in place.
#[inline(always)]
pub fn activate(act: Activation, v: &mut [f32]) {
    match act {
        Activation::None => {}
        Activation::Relu => v.iter_mut().for_each(|x| *x = x.max(0.0)),
        Activation::Gelu => v.iter_mut().for_each(|x| *x = gelu(*x)),
    }
}

/// Apply the epilogue to a segment of one output row: `row` holds the raw accumulators of
/// columns `col0..col0 + row.len()`; `bias` is the full bias vector (length N) and
/// `residual` the matching segment of the residual row.
#[inline(always)]
pub fn apply(ep: &Epilogue, bias: Option<&[f32]>, residual: Option<&[f32]>, col0: usize, row: &mut [f32]) {
    if ep.scale != 1.0 {
        row.iter_mut().for_each(|x| *x *= ep.scale);
    }
    if let Some(b) = bias {
        let len = row.len();
        row.iter_mut().zip(&b[col0..col0 + len]).for_each(|(x, b)| *x += b);
    }
    activate(ep.activation, row);
    if let Some(r) = residual {
        row.iter_mut().zip(r).for_each(|(x, r)| *x += r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_matches_f64_in_absolute_and_relative_terms() {
        let mut x = -12.0f32;
        while x < 12.0 {
            let v = x as f64;
            let want = 0.5 * v * libm::erfc(-v / std::f64::consts::SQRT_2);
            let got = gelu(x) as f64;
            let rel = (got - want).abs() / want.abs().max(1e-30);
            // f32 rounding of the exponent −z² grows with z², and so does the relative error.
            let bound = 2e-6 + 2e-7 * v * v;
            assert!(rel < bound || (got - want).abs() < 1e-30, "gelu({x}) = {got}, want {want} (rel {rel:e})");
            x += 0.000_73;
        }
    }

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0.0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = (x as f64).exp();
            worst = worst.max(((exp(x) as f64) - want).abs() / want);
            x += 0.0123;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
    }
}
