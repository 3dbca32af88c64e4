//! Fixed-horizon frequentist comparisons: Welch's t-test on the absolute difference and the delta-method relative lift.

use serde::{Deserialize, Serialize};

use crate::dist::{t_ppf, t_sf};
use crate::error::{check_alpha, finite, positive, StatsError};
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
/// serde_json writes an infinite end as `null`, so a boundary that
/// serializes these should map the open end explicitly.
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
    let dof = welch_dof(control, treatment)?;
    let se = (control.var_of_mean() + treatment.var_of_mean()).sqrt();
    t_test(treatment.mean - control.mean, se, dof, alpha, alternative)
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
    let dof = welch_dof(control, treatment)?;
    let mu_b = control.mean;
    if mu_b == 0.0 {
        return Err(StatsError::ZeroBaseline);
    }
    let mu_b2 = mu_b * mu_b;
    let variance = treatment.var_of_mean() / mu_b2
        + control.var_of_mean() * treatment.mean * treatment.mean / (mu_b2 * mu_b2);
    let estimate = (treatment.mean - mu_b) / mu_b.abs();
    t_test(estimate, variance.sqrt(), dof, alpha, alternative)
}

/// The Welch–Satterthwaite degrees of freedom of two arms,
/// (v_B/n_B + v_T/n_T)² / (v_B²/(n_B²(n_B−1)) + v_T²/(n_T²(n_T−1))).
///
/// Needs n ≥ 2 in both arms and at least one positive variance.
pub fn welch_dof(control: &SampleStats, treatment: &SampleStats) -> Result<f64, StatsError> {
    control.check("control arm", 2.0)?;
    treatment.check("treatment arm", 2.0)?;
    let (vb, vt) = (control.var_of_mean(), treatment.var_of_mean());
    let denominator = vb * vb / (control.n - 1.0) + vt * vt / (treatment.n - 1.0);
    if denominator.is_nan() || denominator <= 0.0 {
        return Err(StatsError::ZeroVariance("the difference of means"));
    }
    Ok((vb + vt) * (vb + vt) / denominator)
}

/// A t-test of `estimate` with standard error `se` and `dof` degrees of
/// freedom (`f64::INFINITY` for a z-test).
///
/// Two-sided: p = 2·P(T > |t|) and estimate ± t_{1−α/2}·se. `Greater`:
/// p = P(T > t) and the interval from estimate − t_{1−α}·se to +∞. `Less`:
/// p = P(T < t) and the interval from −∞ to estimate + t_{1−α}·se.
pub fn t_test(
    estimate: f64,
    se: f64,
    dof: f64,
    alpha: f64,
    alternative: Alternative,
) -> Result<Estimate, StatsError> {
    finite("estimate", estimate)?;
    check_alpha(alpha)?;
    if se == 0.0 {
        return Err(StatsError::ZeroVariance("the estimate"));
    }
    positive("se", se)?;
    if dof.is_nan() || dof <= 0.0 {
        return Err(StatsError::InvalidParameter {
            name: "dof",
            value: dof,
            expected: "> 0",
        });
    }
    let t = estimate / se;
    let (p_value, ci_low, ci_high) = match alternative {
        Alternative::TwoSided => {
            let half = t_ppf(1.0 - alpha / 2.0, dof) * se;
            let p = (2.0 * t_sf(t.abs(), dof)).min(1.0);
            (p, estimate - half, estimate + half)
        }
        Alternative::Greater => {
            let half = t_ppf(1.0 - alpha, dof) * se;
            (t_sf(t, dof), estimate - half, f64::INFINITY)
        }
        Alternative::Less => {
            let half = t_ppf(1.0 - alpha, dof) * se;
            (t_sf(-t, dof), f64::NEG_INFINITY, estimate + half)
        }
    };
    Ok(Estimate {
        estimate,
        se,
        ci_low,
        ci_high,
        p_value: p_value.clamp(0.0, 1.0),
        dof,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(n: f64, mean: f64, variance: f64) -> SampleStats {
        SampleStats::new(n, mean, variance)
    }

    #[test]
    fn invalid_inputs_say_why() {
        let ok = arm(10.0, 1.0, 1.0);
        let tiny = arm(1.0, 1.0, 1.0);
        let flat = arm(10.0, 1.0, 0.0);
        let alt = Alternative::TwoSided;
        assert!(matches!(
            welch_absolute(&tiny, &ok, 0.05, alt),
            Err(StatsError::TooFewObservations { .. })
        ));
        assert_eq!(
            welch_absolute(&flat, &flat, 0.05, alt),
            Err(StatsError::ZeroVariance("the difference of means"))
        );
        assert!(matches!(
            welch_absolute(&ok, &ok, 1.5, alt),
            Err(StatsError::InvalidParameter { name: "alpha", .. })
        ));
        assert_eq!(
            relative_lift(&arm(10.0, 0.0, 1.0), &ok, 0.05, alt),
            Err(StatsError::ZeroBaseline)
        );
        assert!(matches!(
            welch_absolute(&arm(10.0, f64::NAN, 1.0), &ok, 0.05, alt),
            Err(StatsError::InvalidParameter { name: "mean", .. })
        ));
    }

    #[test]
    fn one_constant_arm_leaves_the_other_arms_dof() {
        // With one variance 0, Welch–Satterthwaite reduces to n − 1 of the other arm.
        let dof = welch_dof(&arm(10.0, 1.0, 0.0), &arm(25.0, 2.0, 4.0)).unwrap();
        assert!((dof - 24.0).abs() < 1e-12);
    }

    #[test]
    fn a_z_test_is_a_t_test_with_infinite_dof() {
        let z = t_test(1.96, 1.0, f64::INFINITY, 0.05, Alternative::TwoSided).unwrap();
        // Published: 2·(1 − Φ(1.96)) = 0.04999579029644097.
        assert!((z.p_value - 0.049_995_790_296_440_97).abs() < 1e-15);
        assert!((z.ci_low - (1.96 - 1.959_963_984_540_054)).abs() < 1e-14);
    }
}
