//! Multiple-testing corrections: Holm–Bonferroni, Benjamini–Hochberg and GrowthBook's adjusted intervals.

use crate::error::StatsError;

/// Holm–Bonferroni adjusted p-values, in the order given.
pub fn holm(p_values: &[f64]) -> Result<Vec<f64>, StatsError> {
    todo!("{p_values:?}")
}

/// Benjamini–Hochberg adjusted p-values (false discovery rate), in the order given.
pub fn benjamini_hochberg(p_values: &[f64]) -> Result<Vec<f64>, StatsError> {
    todo!("{p_values:?}")
}

/// GrowthBook's `adjustedCI`: the interval lift ± z_{1−α/2}·|lift/Φ⁻¹(1−p_adj/2)|
/// implied by an adjusted p-value. It is unbounded when p_adjusted = 1.
pub fn adjusted_ci(p_adjusted: f64, lift: f64, alpha: f64) -> Result<(f64, f64), StatsError> {
    todo!("{p_adjusted}{lift}{alpha}")
}
