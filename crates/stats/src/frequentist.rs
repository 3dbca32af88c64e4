//! Fixed-horizon frequentist comparisons: Welch's t-test on the absolute difference and the delta-method relative lift.

use serde::{Deserialize, Serialize};

use crate::error::StatsError;
use crate::moments::SampleStats;

/// The alternative hypothesis, stated about treatment minus control.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alternative {
    /// Treatment differs from control in either direction.
    #[default]
    TwoSided,
    /// Treatment is greater than control (gbstats' `OneSidedTreatmentGreaterTTest`).
    Greater,
    /// Treatment is less than control (gbstats' `OneSidedTreatmentLesserTTest`).
    Less,
}

/// A frequentist estimate of treatment minus control (absolute or relative).
///
/// For one-sided alternatives the open end of the interval is infinite
/// (`ci_high = +∞` for `Greater`, `ci_low = −∞` for `Less`), as gbstats
/// reports it; every other field is finite.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The point estimate.
    pub estimate: f64,
    /// Its standard error.
    pub se: f64,
    /// The lower end of the 1−alpha confidence interval.
    pub ci_low: f64,
    /// The upper end of the 1−alpha confidence interval.
    pub ci_high: f64,
    /// The p-value for the chosen alternative.
    pub p_value: f64,
    /// The Welch–Satterthwaite degrees of freedom.
    pub dof: f64,
}

/// Welch's t-test on mean_T − mean_B (= scipy.stats.ttest_ind(equal_var=False)).
///
/// Needs n ≥ 2 in both arms and a positive standard error.
pub fn welch_absolute(
    control: &SampleStats,
    treatment: &SampleStats,
    alpha: f64,
    alternative: Alternative,
) -> Result<Estimate, StatsError> {
    todo!("{control:?}{treatment:?}{alpha}{alternative:?}")
}

/// The relative lift (mean_T − mean_B)/|mean_B| with the delta-method
/// variance var_T/(n_T·μ_B²) + var_B·μ_T²/(n_B·μ_B⁴) and the Welch–Satterthwaite
/// dof of the per-arm variances (gbstats' convention).
pub fn relative_lift(
    control: &SampleStats,
    treatment: &SampleStats,
    alpha: f64,
    alternative: Alternative,
) -> Result<Estimate, StatsError> {
    todo!("{control:?}{treatment:?}{alpha}{alternative:?}")
}

/// The Welch–Satterthwaite degrees of freedom of two arms.
pub fn welch_dof(control: &SampleStats, treatment: &SampleStats) -> Result<f64, StatsError> {
    todo!("{control:?}{treatment:?}")
}

/// A t-test of `estimate` with standard error `se` and `dof` degrees of
/// freedom (`f64::INFINITY` for a z-test).
pub fn t_test(
    estimate: f64,
    se: f64,
    dof: f64,
    alpha: f64,
    alternative: Alternative,
) -> Result<Estimate, StatsError> {
    todo!("{estimate}{se}{dof}{alpha}{alternative:?}")
}
