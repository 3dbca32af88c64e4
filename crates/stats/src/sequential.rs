//! Always-valid inference: the asymptotic confidence sequences of Waudby-Smith et al. as gbstats computes them.

use serde::{Deserialize, Serialize};

use crate::error::StatsError;
use crate::frequentist::Alternative;

/// gbstats' default tuning parameter τ of the confidence sequence.
pub const DEFAULT_TAU: f64 = 5000.0;

/// An always-valid confidence interval and p-value.
///
/// One-sided alternatives leave the open end infinite, as `Estimate` does.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequentialEstimate {
    /// The lower end of the confidence sequence at this look.
    pub ci_low: f64,
    /// The upper end of the confidence sequence at this look.
    pub ci_high: f64,
    /// The always-valid p-value.
    pub p_value: f64,
}

/// The confidence sequence for `estimate` with standard error `se` after
/// `n_total` units (both arms together), at level alpha with tuning τ.
pub fn sequential(
    estimate: f64,
    se: f64,
    n_total: f64,
    alpha: f64,
    tau: f64,
    alternative: Alternative,
) -> Result<SequentialEstimate, StatsError> {
    todo!("{estimate}{se}{n_total}{alpha}{tau}{alternative:?}")
}
