//! Sample ratio mismatch: chi-square goodness of fit of assigned units against expected shares.

use serde::{Deserialize, Serialize};

/// The p-value below which a sample ratio mismatch is flagged (GrowthBook's
/// `DEFAULT_SRM_THRESHOLD`).
pub const SRM_THRESHOLD: f64 = 0.001;

/// The result of an SRM check.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Srm {
    /// The chi-square statistic Σ(o−e)²/e.
    pub chi2: f64,
    /// P(χ²_{k−1} > chi2), 1 when fewer than two arms count.
    pub p_value: f64,
    /// Whether p_value ≥ `SRM_THRESHOLD`.
    pub ok: bool,
}

/// Chi-square goodness of fit of `observed` unit counts against
/// `expected_weights` (any positive scale, for example logged propensity
/// sums), with GrowthBook's TypeScript semantics.
pub fn srm(observed: &[f64], expected_weights: &[f64]) -> Srm {
    todo!("{observed:?}{expected_weights:?}")
}
