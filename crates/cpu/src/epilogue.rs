//! The GEMM epilogue and the activation math shared by the fast kernels:
//! `out = act(scale·acc + bias) + residual`, applied to one output row segment at a time.

use omnifuse_core::op::{Activation, Epilogue};

/// Evaluate a polynomial with coefficients in increasing order (Horner).
#[inline(always)]
fn horner(s: f32, c: &[f32]) -> f32 {
    c.iter().rev().fold(0.0, |acc, &ci| acc * s + ci)
}

// Rational approximations of erf/erfc over four ranges, with the coefficients of the classic
// fdlibm erf (Sun Microsystems, freely redistributable), rounded to f32.
const PP: [f32; 5] = [1.283_791_7e-1, -3.250_421e-1, -2.848_175e-2, -5.770_270_3e-3, -2.376_301_7e-5];
const QQ: [f32; 6] = [1.0, 3.979_172_4e-1, 6.502_225e-2, 5.081_306e-3, 1.324_947_4e-4, -3.960_228_3e-6];
const ERX: f32 = 8.450_629e-1;
const PA: [f32; 7] =
    [-2.362_118_6e-3, 4.148_561e-1, -3.722_078_8e-1, 3.183_466_2e-1, -1.108_946_9e-1, 3.547_830_4e-2, -2.166_375_6e-3];
const QA: [f32; 7] = [1.0, 1.064_208_8e-1, 5.403_979_3e-1, 7.182_865_4e-2, 1.261_712_2e-1, 1.363_708_4e-2, 1.198_45e-2];
const RA: [f32; 8] = [
    -9.864_944e-3,
    -6.938_586e-1,
    -1.055_862_6e1,
    -6.237_533e1,
    -1.623_966_7e2,
    -1.846_051e2,
    -8.128_744e1,
    -9.814_329,
];
const SA: [f32; 9] =
    [1.0, 1.965_127_1e1, 1.376_577_5e2, 4.345_659e2, 6.453_873e2, 4.290_081_4e2, 1.086_35e2, 6.570_25, -6.042_441_5e-2];
const RB: [f32; 7] =
    [-9.864_943e-3, -7.992_832_4e-1, -1.775_795_5e1, -1.606_363_8e2, -6.375_664_4e2, -1.025_095_1e3, -4.835_192e2];
const SB: [f32; 8] =
    [1.0, 3.033_806e1, 3.257_925e2, 1.536_729_6e3, 3.199_858_2e3, 2.553_050_5e3, 4.745_285_4e2, -2.244_095_3e1];

/// erfc(a) for a ≥ 0, accurate in relative terms (no `1 − erf` cancellation for large a).
#[inline(always)]
fn erfc_pos(a: f32) -> f32 {
    if a < 0.843_75 {
        let z = a * a;
        1.0 - (a + a * (horner(z, &PP) / horner(z, &QQ)))
    } else if a < 1.25 {
        let s = a - 1.0;
        1.0 - ERX - horner(s, &PA) / horner(s, &QA)
    } else if a < 10.0 {
        let s = 1.0 / (a * a);
        let (p, q) = if a < 2.857_143 { (horner(s, &RA), horner(s, &SA)) } else { (horner(s, &RB), horner(s, &SB)) };
        let z = f32::from_bits(a.to_bits() & 0xffff_f000);
        (-z * z - 0.5625).exp() * ((z - a) * (z + a) + p / q).exp() / a
    } else {
        0.0
    }
}

/// erf(x) in f32 to a few ulp, by range-split rational approximations.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let r = if a < 0.843_75 {
        let z = a * a;
        a + a * (horner(z, &PP) / horner(z, &QQ))
    } else if a < 1.25 {
        let s = a - 1.0;
        ERX + horner(s, &PA) / horner(s, &QA)
    } else if a < 6.0 {
        1.0 - erfc_pos(a)
    } else {
        1.0
    };
    r.copysign(x)
}

/// GELU, erf form: `0.5·x·(1 + erf(x/√2))`, which for negative x is `0.5·x·erfc(|x|/√2)`
/// (evaluated that way so the small tail keeps its relative accuracy).
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    let a = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    if x >= 0.0 { 0.5 * x * (1.0 + erf(a)) } else { 0.5 * x * erfc_pos(a) }
}

/// Apply `act` in place.
#[inline]
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
#[inline]
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
    fn erf_matches_f64_reference() {
        let mut worst = 0.0f64;
        let mut x = -7.0f32;
        while x < 7.0 {
            let want = libm::erf(x as f64);
            worst = worst.max((erf(x) as f64 - want).abs());
            x += 0.000_37;
        }
        assert!(worst < 3e-7, "worst abs error {worst}");
    }

    #[test]
    fn gelu_keeps_relative_accuracy_in_the_negative_tail() {
        let mut x = -12.0f32;
        while x < 8.0 {
            let v = x as f64;
            let want = 0.5 * v * libm::erfc(-v / std::f64::consts::SQRT_2);
            let got = gelu(x) as f64;
            let rel = (got - want).abs() / want.abs().max(1e-30);
            let bound = if x > -6.0 { 4e-6 } else { 1e-4 };
            assert!(rel < bound || (got - want).abs() < 1e-37, "gelu({x}) = {got}, want {want}");
            x += 0.001_3;
        }
    }
}
