//! Bayesian effect model: Gaussian posterior on the effect, chance to win, credible interval and risk.

use serde::{Deserialize, Serialize};

use crate::error::StatsError;

/// A proper normal prior N(mean, variance) on the effect (gbstats uses it on
/// the relative lift). Note that the second parameter is the variance.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NormalPrior {
    /// The prior mean.
    pub mean: f64,
    /// The prior variance.
    pub variance: f64,
}

/// The posterior summary of the effect.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bayes {
    /// The posterior mean of the effect.
    pub mean: f64,
    /// The posterior standard deviation.
    pub sd: f64,
    /// P(treatment beats control): P(Δ > 0), or P(Δ < 0) for inverse metrics.
    pub chance_to_win: f64,
    /// The lower end of the 1−alpha credible interval.
    pub ci_low: f64,
    /// The upper end of the 1−alpha credible interval.
    pub ci_high: f64,
    /// The expected loss of shipping control.
    pub risk_control: f64,
    /// The expected loss of shipping treatment.
    pub risk_treatment: f64,
}

/// The Gaussian effect model: posterior N(estimate, se²) under the default
/// flat prior, or the precision-weighted posterior under a proper `prior`.
/// `inverse` is for metrics where smaller is better.
pub fn bayesian(
    estimate: f64,
    se: f64,
    prior: Option<NormalPrior>,
    alpha: f64,
    inverse: bool,
) -> Result<Bayes, StatsError> {
    todo!("{estimate}{se}{prior:?}{alpha}{inverse}")
}

/// gbstats' `get_risk` for a posterior N(mu, sigma²): [E[max(Δ, 0)],
/// E[max(−Δ, 0)]], the expected loss of shipping control and of shipping
/// treatment. A non-positive sigma is a point mass.
pub fn get_risk(mu: f64, sigma: f64) -> [f64; 2] {
    todo!("{mu}{sigma}")
}
