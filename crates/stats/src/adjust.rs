//! Metric adjustments: ratio metrics by the delta method and CUPED regression adjustment with one pooled θ.

use serde::{Deserialize, Serialize};

use crate::error::StatsError;
use crate::frequentist::{Alternative, Estimate};
use crate::moments::{CoMoments, SampleStats};

/// A ratio metric Σx/Σy per arm (x = numerator, y = denominator, one pair per
/// unit) as per-unit summary statistics: mean = x̄/ȳ and the delta-method
/// per-unit variance var_x/ȳ² + var_y·x̄²/ȳ⁴ − 2·cov·x̄/ȳ³ (gbstats'
/// `variance_of_ratios`), which feed the ordinary comparisons.
pub fn ratio_stats(arm: &CoMoments) -> Result<SampleStats, StatsError> {
    todo!("{arm:?}")
}

/// CUPED: both arms adjusted with one θ = pooled Cov(x, y)/Var(y), where x is
/// the metric and y the pre-experiment covariate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cuped {
    theta: f64,
    control: CoMoments,
    treatment: CoMoments,
}

/// Pools both arms' co-moments into θ and returns the adjustment.
///
/// Needs n ≥ 2 per arm and a covariate with positive pooled variance.
pub fn cuped(control: &CoMoments, treatment: &CoMoments) -> Result<Cuped, StatsError> {
    todo!("{control:?}{treatment:?}")
}

impl Cuped {
    /// The pooled regression coefficient θ.
    pub fn theta(&self) -> f64 {
        self.theta
    }

    /// The control arm adjusted: mean x̄ − θ(ȳ − ȳ_pooled), variance
    /// var_x + θ²var_y − 2θcov.
    pub fn control(&self) -> SampleStats {
        todo!()
    }

    /// The treatment arm adjusted like `control`.
    pub fn treatment(&self) -> SampleStats {
        todo!()
    }

    /// Welch's test on the adjusted absolute difference.
    pub fn absolute(&self, alpha: f64, alternative: Alternative) -> Result<Estimate, StatsError> {
        todo!("{alpha}{alternative:?}")
    }

    /// The adjusted relative lift ((x̄_T−θȳ_T) − (x̄_B−θȳ_B))/|x̄_B| with
    /// gbstats' delta-method variance (`frequentist_variance_relative_cuped`).
    pub fn relative(&self, alpha: f64, alternative: Alternative) -> Result<Estimate, StatsError> {
        todo!("{alpha}{alternative:?}")
    }
}
