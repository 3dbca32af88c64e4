//! Heterogeneity across segments: Cochran's Q with I², and the disparate-impact ratio.

use serde::{Deserialize, Serialize};

use crate::error::StatsError;

/// Cochran's Q test of equal effects across segments.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CochranQ {
    /// Q = Σ w_i (θ_i − θ̄)² with w_i = 1/se_i².
    pub q: f64,
    /// The degrees of freedom k − 1.
    pub df: f64,
    /// P(χ²_df > Q).
    pub p_value: f64,
    /// I² = max(0, (Q − df)/Q), the share of variation due to heterogeneity.
    pub i_squared: f64,
}

/// Cochran's Q over per-segment (estimate, se) pairs; needs ≥ 2 segments with se > 0.
pub fn cochran_q(segments: &[(f64, f64)]) -> Result<CochranQ, StatsError> {
    todo!("{segments:?}")
}

/// The disparate-impact ratio rate_group / rate_reference (the four-fifths
/// rule flags values below 0.8).
pub fn disparate_impact(rate_group: f64, rate_reference: f64) -> Result<f64, StatsError> {
    todo!("{rate_group}{rate_reference}")
}

/// The smallest disparate-impact ratio over groups, against the most favored group.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DisparateImpact {
    /// min_i rate_i / max_j rate_j.
    pub ratio: f64,
    /// The index of the least favored group.
    pub group: usize,
    /// The index of the most favored group.
    pub reference: usize,
}

/// The minimum disparate-impact ratio over `rates` (each in [0, 1]) against the highest rate.
pub fn disparate_impact_min(rates: &[f64]) -> Result<DisparateImpact, StatsError> {
    todo!("{rates:?}")
}
