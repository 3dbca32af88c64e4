//! Standardized effect sizes: Cohen's d, Hedges' g and Cohen's h.

use serde::{Deserialize, Serialize};

use crate::error::StatsError;
use crate::moments::SampleStats;

/// Standardized effect sizes of treatment against control.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EffectSizes {
    /// (μ_T − μ_B) / pooled sd.
    pub cohens_d: f64,
    /// Cohen's d times the exact small-sample correction J(n_T + n_B − 2).
    pub hedges_g: f64,
    /// 2·asin√p_T − 2·asin√p_B, for binary metrics only.
    pub cohens_h: Option<f64>,
}

/// Effect sizes of `treatment` against `control`; `binary` adds Cohen's h
/// (the means must then lie in [0, 1]).
pub fn effect_sizes(
    control: &SampleStats,
    treatment: &SampleStats,
    binary: bool,
) -> Result<EffectSizes, StatsError> {
    todo!("{control:?}{treatment:?}{binary}")
}
