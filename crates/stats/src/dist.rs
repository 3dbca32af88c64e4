//! Thin wrappers over statrs' normal, Student-t and chi-square distributions, with quantile polishing.

use statrs::distribution::{ChiSquared, Continuous, ContinuousCDF, Normal, StudentsT};

/// The standard normal distribution.
fn std_normal() -> Normal {
    // Parameters (0, 1) are always valid.
    Normal::standard()
}

/// Φ(x), the standard normal CDF.
pub fn norm_cdf(x: f64) -> f64 {
    std_normal().cdf(x)
}

/// 1 − Φ(x), computed without cancellation in the upper tail.
pub fn norm_sf(x: f64) -> f64 {
    std_normal().sf(x)
}

/// φ(x), the standard normal density.
pub fn norm_pdf(x: f64) -> f64 {
    std_normal().pdf(x)
}

/// Φ⁻¹(p), the standard normal quantile; ±∞ at p = 1 and p = 0.
pub fn norm_ppf(p: f64) -> f64 {
    todo!("{p}")
}

/// The Student-t CDF with `dof` degrees of freedom.
pub fn t_cdf(x: f64, dof: f64) -> f64 {
    todo!("{x}{dof}")
}

/// The Student-t survival function 1 − F(x).
pub fn t_sf(x: f64, dof: f64) -> f64 {
    todo!("{x}{dof}")
}

/// The Student-t quantile with `dof` degrees of freedom.
pub fn t_ppf(p: f64, dof: f64) -> f64 {
    todo!("{p}{dof}")
}

/// The chi-square survival function P(χ²_df > x).
pub fn chi2_sf(x: f64, df: f64) -> f64 {
    let _ = (ChiSquared::new(df), StudentsT::new(0.0, 1.0, 1.0));
    todo!("{x}{df}")
}
