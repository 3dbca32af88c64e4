//! Standardized effect sizes: Cohen's d, Hedges' g and Cohen's h.

use serde::{Deserialize, Serialize};

use crate::dist::ln_gamma_half_ratio;
use crate::error::StatsError;
use crate::moments::SampleStats;

/// Standardized effect sizes of treatment against control.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EffectSizes {
    /// (μ_T − μ_B) / pooled sd, with the pooled variance
    /// ((n_B−1)v_B + (n_T−1)v_T)/(n_B + n_T − 2).
    pub cohens_d: f64,
    /// Cohen's d times the exact small-sample correction
    /// J(m) = Γ(m/2)/(√(m/2)·Γ((m−1)/2)), m = n_B + n_T − 2.
    pub hedges_g: f64,
    /// 2·asin√p_T − 2·asin√p_B, for binary metrics only.
    pub cohens_h: Option<f64>,
}

/// Effect sizes of `treatment` against `control`; `binary` adds Cohen's h
/// (the means must then lie in [0, 1]).
///
/// Needs n ≥ 2 per arm and a positive pooled variance.
pub fn effect_sizes(
    control: &SampleStats,
    treatment: &SampleStats,
    binary: bool,
) -> Result<EffectSizes, StatsError> {
    control.check("control arm", 2.0)?;
    treatment.check("treatment arm", 2.0)?;
    let m = control.n + treatment.n - 2.0;
    let pooled =
        ((control.n - 1.0) * control.variance + (treatment.n - 1.0) * treatment.variance) / m;
    if pooled.is_nan() || pooled <= 0.0 {
        return Err(StatsError::ZeroVariance("the pooled sample"));
    }
    let cohens_d = (treatment.mean - control.mean) / pooled.sqrt();
    let hedges_g = cohens_d * hedges_correction(m);
    let cohens_h = if binary {
        Some(cohens_h(control.mean, treatment.mean)?)
    } else {
        None
    };
    Ok(EffectSizes {
        cohens_d,
        hedges_g,
        cohens_h,
    })
}

/// Hedges' exact correction factor J(m) = Γ(m/2)/(√(m/2)·Γ((m−1)/2)) for
/// m > 1 degrees of freedom.
pub fn hedges_correction(m: f64) -> f64 {
    let x = (m - 1.0) / 2.0;
    (ln_gamma_half_ratio(x) - 0.5 * (m / 2.0).ln()).exp()
}

/// Cohen's h between two proportions in [0, 1].
pub fn cohens_h(p_control: f64, p_treatment: f64) -> Result<f64, StatsError> {
    for (name, p) in [
        ("control proportion", p_control),
        ("treatment proportion", p_treatment),
    ] {
        if !(0.0..=1.0).contains(&p) {
            return Err(StatsError::InvalidParameter {
                name,
                value: p,
                expected: "in [0, 1]",
            });
        }
    }
    Ok(2.0 * p_treatment.sqrt().asin() - 2.0 * p_control.sqrt().asin())
}
