//! Thin wrappers over statrs' normal, Student-t and chi-square distributions, with Newton polishing of the t quantile.

use std::f64::consts::FRAC_1_SQRT_2;

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};
use statrs::function::gamma::ln_gamma;

/// Degrees of freedom above which the Student-t is replaced by the normal
/// (the difference in quantiles is below 1e-12 relative).
const NORMAL_DOF: f64 = 1e12;

/// Φ(x), the standard normal CDF, as ½·erfc(−x/√2).
///
/// statrs' erfc carries about 1e-10 relative error on parts of its range
/// (its rational approximations were fitted around single-precision
/// constants that it stores in double precision), so the normal functions
/// use libm's erfc (the musl/FreeBSD implementation, within an ulp or two);
/// the fixture tests compare with scipy.
pub fn norm_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x * FRAC_1_SQRT_2)
}

/// 1 − Φ(x), computed without cancellation in the upper tail.
pub fn norm_sf(x: f64) -> f64 {
    0.5 * libm::erfc(x * FRAC_1_SQRT_2)
}

/// φ(x), the standard normal density.
pub fn norm_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() * FRAC_1_SQRT_2PI
}

/// 1/√(2π).
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Φ⁻¹(p), the standard normal quantile; −∞ at 0, +∞ at 1, and NaN outside [0, 1]
/// (callers validate first).
///
/// statrs' inverse (erfc_inv) is polished by one Newton step on the
/// accurate tail probability, which takes it from about 1e-11 to 1e-15.
pub fn norm_ppf(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let (q, sign) = if p > 0.5 { (1.0 - p, 1.0) } else { (p, -1.0) };
    // The lower-tail quantile of q is exact in q; 1 − q would round it away.
    let x = Normal::standard().inverse_cdf(q).abs();
    let density = norm_pdf(x);
    if density > 0.0 {
        sign * (x + (norm_sf(x) - q) / density)
    } else {
        sign * x
    }
}

/// The standard Student-t with `dof` degrees of freedom, or `None` when the
/// normal should be used instead.
fn student(dof: f64) -> Option<StudentsT> {
    if dof >= NORMAL_DOF {
        return None;
    }
    StudentsT::new(0.0, 1.0, dof).ok()
}

/// Degrees of freedom from which the large-dof expansion may replace statrs'
/// incomplete beta, whose relative accuracy degrades with dof (about 1e-13
/// at 1e3, 4e-12 at 1e4 and 2e-9 at 1e7 dof, against mpmath).
const EXPANSION_DOF: f64 = 1e3;
/// The expansion is used while x⁴ ≤ this × dof, where its truncation error
/// is below 1e-14 relative (checked against mpmath at 40 digits).
const EXPANSION_REACH: f64 = 0.05;

/// The upper tail of the Student-t for large dof by the asymptotic
/// expansion sf(x) = Φ(−x) + φ(x)·Σ_{k=1..5} Q_k(x)/dof^k, whose
/// polynomials Q_k were derived by expanding the t density in 1/dof and
/// integrating term by term; `None` outside its validity region.
fn t_sf_expansion(x: f64, dof: f64) -> Option<f64> {
    let x2 = x * x;
    if dof < EXPANSION_DOF || x2 * x2 > EXPANSION_REACH * dof {
        return None;
    }
    let x4 = x2 * x2;
    let x6 = x4 * x2;
    let x8 = x4 * x4;
    let x10 = x8 * x2;
    let x12 = x6 * x6;
    let x14 = x12 * x2;
    let x16 = x8 * x8;
    let x18 = x16 * x2;
    let q1 = x * (x2 + 1.0) / 4.0;
    let q2 = x * (x2 - 3.0) * (3.0 * x4 + 2.0 * x2 + 1.0) / 96.0;
    let q3 = x * (x10 - 11.0 * x8 + 14.0 * x6 + 6.0 * x4 - 3.0 * x2 - 15.0) / 384.0;
    let q4 = x
        * (15.0 * x14 - 375.0 * x12 + 2225.0 * x10 - 2141.0 * x8 - 939.0 * x6 - 213.0 * x4
            + 915.0 * x2
            + 945.0)
        / 92160.0;
    let q5 = x
        * (3.0 * x18 - 133.0 * x16 + 1764.0 * x14 - 7516.0 * x12
            + 5994.0 * x10
            + 2490.0 * x8
            + 1140.0 * x6
            + 180.0 * x4
            + 5355.0 * x2
            + 17955.0)
        / 368640.0;
    let e = 1.0 / dof;
    let series = e * (q1 + e * (q2 + e * (q3 + e * (q4 + e * q5))));
    Some(norm_sf(x) + norm_pdf(x) * series)
}

/// The Student-t CDF with `dof` > 0 degrees of freedom (normal for infinite dof).
pub fn t_cdf(x: f64, dof: f64) -> f64 {
    t_sf(-x, dof)
}

/// The Student-t survival function 1 − F(x), without cancellation in the upper tail.
///
/// statrs' incomplete beta below 1e3 dof; above, the large-dof expansion
/// where it holds (|x| up to (0.05·dof)^¼, which covers every probability
/// above about 1e-150 at 1e7 dof) and statrs beyond it.
pub fn t_sf(x: f64, dof: f64) -> f64 {
    let Some(t) = student(dof) else {
        return norm_sf(x);
    };
    match t_sf_expansion(x, dof) {
        Some(sf) => sf,
        None => t.sf(x),
    }
}

/// The Student-t density Γ((ν+1)/2)/(Γ(ν/2)√(νπ))·(1 + x²/ν)^(−(ν+1)/2),
/// with the gamma ratio from `ln_gamma_half_ratio` (accurate and cheap at
/// large dof, unlike a difference of log-gammas).
pub fn t_pdf(x: f64, dof: f64) -> f64 {
    if student(dof).is_none() {
        return norm_pdf(x);
    }
    let log_norm = ln_gamma_half_ratio(dof / 2.0) - 0.5 * (dof * std::f64::consts::PI).ln();
    (log_norm - 0.5 * (dof + 1.0) * (x * x / dof).ln_1p()).exp()
}

/// From this many dof on, the Cornish–Fisher expansion of the t quantile
/// (to 1/dof⁴) starts Newton within 1e-8 relative for usual probabilities.
const CORNISH_FISHER_DOF: f64 = 30.0;

/// The Cornish–Fisher expansion of the upper t quantile around the normal
/// quantile z (Abramowitz and Stegun 26.7.8, checked against scipy).
fn cornish_fisher(z: f64, dof: f64) -> f64 {
    let z2 = z * z;
    let g1 = z * (z2 + 1.0) / 4.0;
    let g2 = z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0;
    let g3 = z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0;
    let g4 = z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0;
    let e = 1.0 / dof;
    z + e * (g1 + e * (g2 + e * (g3 + e * g4)))
}

/// Newton iterations allowed when polishing a t quantile.
const NEWTON_STEPS: usize = 40;
/// The relative Newton step after which the quantile counts as converged.
const NEWTON_DONE: f64 = 1e-9;

/// The Student-t quantile with `dof` > 0 degrees of freedom, for p in [0, 1].
///
/// Exact for 1 and 2 dof. Otherwise a starting point (statrs' AS 64
/// inverse below 30 dof, the Cornish–Fisher expansion above) is polished
/// by Newton steps on the upper-tail probability — in log–log
/// coordinates in the tail, where heavy tails make plain Newton crawl —
/// which brings it to about 1e-14 relative against scipy's `t.ppf` (see the
/// fixture tests).
pub fn t_ppf(p: f64, dof: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    let Some(t) = student(dof) else {
        return norm_ppf(p);
    };
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    if p == 0.5 {
        return 0.0;
    }
    // Work in the upper tail, where the survival function keeps full precision.
    let (q, sign) = if p > 0.5 { (1.0 - p, 1.0) } else { (p, -1.0) };
    if dof == 1.0 {
        return sign / (std::f64::consts::PI * q).tan();
    }
    if dof == 2.0 {
        return sign * (1.0 - 2.0 * q) / (2.0 * q * (1.0 - q)).sqrt();
    }
    let mut x = if dof >= CORNISH_FISHER_DOF {
        // The lower-tail quantile of q is exact in q; 1 − q would round it away.
        cornish_fisher(-norm_ppf(q), dof)
    } else {
        t.inverse_cdf(1.0 - q)
    };
    for _ in 0..NEWTON_STEPS {
        let (sf, density) = (t_sf(x, dof), t_pdf(x, dof));
        if density <= 0.0 || sf <= 0.0 || density.is_nan() || sf.is_nan() {
            break;
        }
        let next = if x > 1.0 {
            // Newton on ln sf as a function of ln x: exact for a power-law tail.
            x * ((sf.ln() - q.ln()) * sf / (density * x)).exp()
        } else {
            x + (sf - q) / density
        };
        // Newton converges quadratically, so a step below 1e-9 relative
        // leaves an error near 1e-18 after it is taken.
        let done = (next - x).abs() <= NEWTON_DONE * next.abs();
        x = next;
        if done {
            break;
        }
    }
    sign * x
}

/// ln Γ(x + ½) − ln Γ(x) for x > 0.
///
/// The difference of two log-gammas loses about ln Γ(x)·ε for large x, so
/// from x = 10 on it is ½ ln x plus its asymptotic series
/// −1/(8x) + 1/(192x³) − 1/(640x⁵) + 17/(14336x⁷) − 31/(18432x⁹) + 691/(180224x¹¹)
/// (derived with sympy; the next term is below 1e-16 at x = 10).
pub(crate) fn ln_gamma_half_ratio(x: f64) -> f64 {
    if x < 10.0 {
        return ln_gamma(x + 0.5) - ln_gamma(x);
    }
    let e = 1.0 / x;
    let e2 = e * e;
    let series = e
        * (-1.0 / 8.0
            + e2 * (1.0 / 192.0
                + e2 * (-1.0 / 640.0
                    + e2 * (17.0 / 14336.0 + e2 * (-31.0 / 18432.0 + e2 * 691.0 / 180_224.0)))));
    0.5 * x.ln() + series
}

/// The chi-square survival function P(χ²_df > x) for df > 0; 1 for x ≤ 0.
pub fn chi2_sf(x: f64, df: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    match ChiSquared::new(df) {
        Ok(chi) => chi.sf(x),
        Err(_) => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quantiles invert the tail probabilities to this relative accuracy,
    /// which statrs' incomplete beta limits between 1e3 and 1e5 dof beyond
    /// the expansion's reach.
    const ROUND_TRIP: f64 = 1e-11;

    #[track_caller]
    fn round_trip(q: f64, tail: f64, what: &str) {
        assert!(
            ((tail - q) / q).abs() <= ROUND_TRIP,
            "{what}: tail {tail:e}, want {q:e}"
        );
    }

    #[test]
    fn quantiles_invert_tail_probabilities() {
        for &p in &[1e-12_f64, 1e-6, 0.001, 0.025, 0.3, 0.7, 0.975, 0.999_999] {
            let q = p.min(1.0 - p);
            for &dof in &[1.0, 2.0, 2.5, 10.0, 55.707, 5841.742, 2e4, 1e7] {
                let x = t_ppf(p, dof);
                assert_eq!(x < 0.0, p < 0.5);
                round_trip(q, t_sf(x.abs(), dof), &format!("t p {p} dof {dof}"));
            }
            let z = norm_ppf(p);
            round_trip(q, norm_sf(z.abs()), &format!("normal p {p}"));
        }
    }

    #[test]
    fn expansion_and_incomplete_beta_agree_where_both_are_accurate() {
        // At 1e3 dof statrs is still accurate to about 1e-13, so the two
        // methods check each other at the hand-over point.
        for &x in &[0.1, 1.0, 2.0, 2.5] {
            let dof = EXPANSION_DOF;
            let expansion = t_sf_expansion(x, dof).unwrap();
            let beta = StudentsT::new(0.0, 1.0, dof).unwrap().sf(x);
            assert!(
                ((expansion - beta) / beta).abs() < 1e-12,
                "x {x}: {expansion:e} vs {beta:e}"
            );
        }
        assert_eq!(t_sf_expansion(1.0, EXPANSION_DOF / 2.0), None);
        assert_eq!(t_sf_expansion(3.0, EXPANSION_DOF), None);
    }

    #[test]
    fn t_density_matches_closed_forms() {
        // Cauchy at 0: 1/π; 2 dof at 1: 3^(−3/2).
        assert!((t_pdf(0.0, 1.0) - std::f64::consts::FRAC_1_PI).abs() < 1e-15);
        assert!((t_pdf(1.0, 2.0) - 3.0_f64.powf(-1.5)).abs() < 1e-15);
        for &dof in &[3.0, 10.0, 55.7, 1e3] {
            for &x in &[0.0, 0.7, 2.0, 6.0] {
                let statrs = statrs::distribution::Continuous::pdf(
                    &StudentsT::new(0.0, 1.0, dof).unwrap(),
                    x,
                );
                assert!(
                    ((t_pdf(x, dof) - statrs) / statrs).abs() < 1e-12,
                    "x {x} dof {dof}"
                );
            }
        }
    }

    #[test]
    fn chi2_sf_of_two_dof_is_exponential() {
        for &x in &[0.5, 3.0, 10.303_030] {
            assert!((chi2_sf(x, 2.0) - (-x / 2.0).exp()).abs() < 1e-14);
        }
        assert_eq!(chi2_sf(0.0, 3.0), 1.0);
    }
}
