//! Bayesian effect model: Gaussian posterior on the effect, chance to win, credible interval and risk.

use serde::{Deserialize, Serialize};

use crate::dist::{norm_cdf, norm_pdf, norm_ppf, norm_sf};
use crate::error::{check_alpha, finite, positive, StatsError};

/// Beyond this many posterior sds from 0 the risk is taken as exact
/// (gbstats' short-circuit for numerical stability).
const RISK_Z_CUTOFF: f64 = 37.0;

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
/// flat prior, or the precision-weighted posterior (precision 1/se² + 1/σ0²)
/// under a proper `prior`. `inverse` is for metrics where smaller is better:
/// it turns chance to win into P(Δ < 0) and swaps the two risks.
pub fn bayesian(
    estimate: f64,
    se: f64,
    prior: Option<NormalPrior>,
    alpha: f64,
    inverse: bool,
) -> Result<Bayes, StatsError> {
    finite("estimate", estimate)?;
    if se == 0.0 {
        return Err(StatsError::ZeroVariance("the estimate"));
    }
    positive("se", se)?;
    check_alpha(alpha)?;
    let (mean, sd) = match prior {
        None => (estimate, se),
        Some(p) => {
            finite("prior mean", p.mean)?;
            positive("prior variance", p.variance)?;
            let data_precision = 1.0 / (se * se);
            let precision = data_precision + 1.0 / p.variance;
            let mean = (estimate * data_precision + p.mean / p.variance) / precision;
            (mean, precision.recip().sqrt())
        }
    };
    let z = norm_ppf(1.0 - alpha / 2.0);
    let p_positive = norm_cdf(mean / sd);
    let [risk_ctrl, risk_trt] = get_risk(mean, sd);
    let (chance_to_win, risk_control, risk_treatment) = if inverse {
        (norm_sf(mean / sd), risk_trt, risk_ctrl)
    } else {
        (p_positive, risk_ctrl, risk_trt)
    };
    Ok(Bayes {
        mean,
        sd,
        chance_to_win,
        ci_low: mean - z * sd,
        ci_high: mean + z * sd,
        risk_control,
        risk_treatment,
    })
}

/// gbstats' `get_risk` for a posterior N(mu, sigma²): [E[max(Δ, 0)],
/// E[max(−Δ, 0)]], the expected loss of shipping control and of shipping
/// treatment. A non-positive sigma is a point mass; beyond 37 sds the
/// answer is [max(mu, 0), max(−mu, 0)] exactly, as gbstats short-circuits.
///
/// With z = mu/sigma, E[max(−Δ, 0)] = sigma·(φ(z) − z·Φ(−z)) and
/// E[max(Δ, 0)] = mu + E[max(−Δ, 0)], both free of cancellation where it matters.
pub fn get_risk(mu: f64, sigma: f64) -> [f64; 2] {
    let point = [mu.max(0.0), (-mu).max(0.0)];
    if sigma.is_nan() || sigma <= 0.0 {
        return point;
    }
    let z = mu / sigma;
    if z.abs() > RISK_Z_CUTOFF {
        return point;
    }
    if z >= 0.0 {
        // Treatment is more likely better: the small quantity is the loss of shipping treatment.
        let loss_trt = (sigma * (norm_pdf(z) - z * norm_sf(z))).max(0.0);
        [mu + loss_trt, loss_trt]
    } else {
        let loss_ctrl = (sigma * (norm_pdf(z) + z * norm_cdf(z))).max(0.0);
        [loss_ctrl, loss_ctrl - mu]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vague_prior_is_nearly_flat() {
        let flat = bayesian(0.05, 0.02, None, 0.05, false).unwrap();
        let vague = bayesian(
            0.05,
            0.02,
            Some(NormalPrior {
                mean: 0.0,
                variance: 1e12,
            }),
            0.05,
            false,
        )
        .unwrap();
        assert!(
            (flat.mean - vague.mean).abs() < 1e-12
                && (flat.chance_to_win - vague.chance_to_win).abs() < 1e-10
        );
    }

    #[test]
    fn inverse_metrics_mirror_chance_and_risk() {
        let up = bayesian(0.03, 0.02, None, 0.05, false).unwrap();
        let down = bayesian(0.03, 0.02, None, 0.05, true).unwrap();
        assert!((up.chance_to_win + down.chance_to_win - 1.0).abs() < 1e-15);
        assert_eq!(
            (up.risk_control, up.risk_treatment),
            (down.risk_treatment, down.risk_control)
        );
        // E[max(Δ,0)] − E[max(−Δ,0)] = E[Δ].
        assert!((up.risk_control - up.risk_treatment - up.mean).abs() < 1e-15);
    }

    #[test]
    fn bad_inputs_are_rejected() {
        assert_eq!(
            bayesian(0.1, 0.0, None, 0.05, false),
            Err(StatsError::ZeroVariance("the estimate"))
        );
        let bad_prior = NormalPrior {
            mean: 0.0,
            variance: 0.0,
        };
        assert!(bayesian(0.1, 0.1, Some(bad_prior), 0.05, false).is_err());
        assert_eq!(get_risk(0.2, 0.0), [0.2, 0.0]);
    }
}
