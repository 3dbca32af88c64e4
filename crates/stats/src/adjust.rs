//! Metric adjustments: ratio metrics by the delta method and CUPED regression adjustment with one pooled θ.

use serde::{Deserialize, Serialize};

use crate::error::StatsError;
use crate::frequentist::{t_test, welch_absolute, welch_dof, Alternative, Estimate};
use crate::moments::{count_f64, CoMoments, SampleStats};

/// A ratio metric Σx/Σy per arm (x = numerator, y = denominator, one pair per
/// unit) as per-unit summary statistics: mean = x̄/ȳ and the delta-method
/// per-unit variance var_x/ȳ² + var_y·x̄²/ȳ⁴ − 2·cov·x̄/ȳ³ (gbstats'
/// `variance_of_ratios`), which feed the ordinary comparisons.
///
/// The variances and covariance come from the accumulated co-moments as
/// they are (gbstats' convention, even for inconsistent sums). Needs n ≥ 2,
/// a non-zero denominator mean and a non-negative resulting variance.
pub fn ratio_stats(arm: &CoMoments) -> Result<SampleStats, StatsError> {
    let n = count_f64(arm.n());
    if arm.n() < 2 {
        return Err(StatsError::TooFewObservations {
            what: "ratio metric",
            needed: 2.0,
            got: n,
        });
    }
    let (mx, my) = (arm.mean_x(), arm.mean_y());
    if my == 0.0 {
        return Err(StatsError::InvalidParameter {
            name: "denominator mean",
            value: my,
            expected: "non-zero",
        });
    }
    let var_x = arm.per(arm.m2_x(), 1);
    let var_y = arm.per(arm.m2_y(), 1);
    let cov = arm.covariance();
    let my2 = my * my;
    let variance = var_x / my2 + var_y * mx * mx / (my2 * my2) - 2.0 * cov * mx / (my2 * my);
    if !(variance >= 0.0 && variance.is_finite()) {
        return Err(StatsError::InvalidParameter {
            name: "ratio variance",
            value: variance,
            expected: "finite and >= 0 (the sums are inconsistent)",
        });
    }
    Ok(SampleStats::new(n, mx / my, variance))
}

/// CUPED: both arms adjusted with one θ = Cov(x, y)/Var(y) over the pooled
/// units of both arms (gbstats' `compute_theta`), where x is the metric and
/// y the pre-experiment covariate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cuped {
    theta: f64,
    pooled_mean_y: f64,
    ddof: u64,
    control: CoMoments,
    treatment: CoMoments,
}

/// Pools both arms' co-moments into θ and returns the adjustment, with
/// sample (n−1) variances and covariances.
///
/// θ is 0 (no adjustment) when the pooled metric or covariate has zero
/// variance, as in gbstats. Needs n ≥ 2 per arm.
pub fn cuped(control: &CoMoments, treatment: &CoMoments) -> Result<Cuped, StatsError> {
    build_cuped(control, treatment, 1)
}

/// CUPED for a binary metric and binary covariate: like [`cuped`], but the
/// variances and covariances are p(1−p)-style population moments (ddof 0),
/// as gbstats' `ProportionStatistic` has them.
pub fn cuped_binary(control: &CoMoments, treatment: &CoMoments) -> Result<Cuped, StatsError> {
    build_cuped(control, treatment, 0)
}

fn build_cuped(control: &CoMoments, treatment: &CoMoments, ddof: u64) -> Result<Cuped, StatsError> {
    for (what, arm) in [("control arm", control), ("treatment arm", treatment)] {
        if arm.n() < 2 {
            return Err(StatsError::TooFewObservations {
                what,
                needed: 2.0,
                got: count_f64(arm.n()),
            });
        }
    }
    let mut pooled = *control;
    pooled.merge(treatment);
    let (var_x, var_y) = (
        pooled.per(pooled.m2_x(), ddof),
        pooled.per(pooled.m2_y(), ddof),
    );
    let theta = if var_x > 0.0 && var_y > 0.0 {
        pooled.per(pooled.c_xy(), ddof) / var_y
    } else {
        0.0
    };
    Ok(Cuped {
        theta,
        pooled_mean_y: pooled.mean_y(),
        ddof,
        control: *control,
        treatment: *treatment,
    })
}

impl Cuped {
    /// The pooled regression coefficient θ.
    pub fn theta(&self) -> f64 {
        self.theta
    }

    /// The control arm adjusted: mean x̄ − θ(ȳ − ȳ_pooled), per-unit
    /// variance var_x + θ²var_y − 2θcov.
    pub fn control(&self) -> SampleStats {
        self.adjusted(&self.control)
    }

    /// The treatment arm adjusted like `control`.
    pub fn treatment(&self) -> SampleStats {
        self.adjusted(&self.treatment)
    }

    /// Welch's test on the adjusted absolute difference.
    pub fn absolute(&self, alpha: f64, alternative: Alternative) -> Result<Estimate, StatsError> {
        welch_absolute(&self.control(), &self.treatment(), alpha, alternative)
    }

    /// The adjusted relative lift ((x̄_T−θȳ_T) − (x̄_B−θȳ_B))/|x̄_B| with
    /// gbstats' delta-method variance (`frequentist_variance_relative_cuped`)
    /// and the Welch dof of the adjusted variances.
    pub fn relative(&self, alpha: f64, alternative: Alternative) -> Result<Estimate, StatsError> {
        let (a, b) = (self.control(), self.treatment());
        let dof = welch_dof(&a, &b)?;
        let mu_a = self.control.mean_x();
        if mu_a == 0.0 {
            return Err(StatsError::ZeroBaseline);
        }
        let theta = self.theta;
        let mu_b = self.treatment.mean_x();
        let (ctrl, trt) = (&self.control, &self.treatment);
        let var_of = |arm: &CoMoments, m: f64| arm.per(m, self.ddof);
        let num_trt = var_of(trt, trt.m2_x()) + theta * theta * var_of(trt, trt.m2_y())
            - 2.0 * theta * var_of(trt, trt.c_xy());
        let v_trt = num_trt / (b.n * mu_a * mu_a);
        let ratio = mu_b / mu_a;
        let num_ctrl = var_of(ctrl, ctrl.m2_x()) * ratio * ratio
            - 2.0 * theta * var_of(ctrl, ctrl.c_xy()) * ratio
            + theta * theta * var_of(ctrl, ctrl.m2_y());
        let v_ctrl = num_ctrl / (a.n * mu_a * mu_a);
        let estimate = (b.mean - a.mean) / mu_a.abs();
        t_test(
            estimate,
            (v_trt + v_ctrl).max(0.0).sqrt(),
            dof,
            alpha,
            alternative,
        )
    }

    fn adjusted(&self, arm: &CoMoments) -> SampleStats {
        let theta = self.theta;
        let var_x = arm.per(arm.m2_x(), self.ddof);
        let var_y = arm.per(arm.m2_y(), self.ddof);
        let cov = arm.per(arm.c_xy(), self.ddof);
        let variance = (var_x + theta * theta * var_y - 2.0 * theta * cov).max(0.0);
        let mean = arm.mean_x() - theta * (arm.mean_y() - self.pooled_mean_y);
        SampleStats::new(count_f64(arm.n()), mean, variance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frequentist::relative_lift;

    #[test]
    fn a_ratio_needs_a_denominator() {
        let arm = CoMoments::from_sums(10, 5.0, 0.0, 5.0, 0.0, 0.0);
        assert!(matches!(
            ratio_stats(&arm),
            Err(StatsError::InvalidParameter {
                name: "denominator mean",
                ..
            })
        ));
        let single = CoMoments::from_sums(1, 5.0, 1.0, 25.0, 1.0, 5.0);
        assert!(matches!(
            ratio_stats(&single),
            Err(StatsError::TooFewObservations { .. })
        ));
    }

    #[test]
    fn a_ratio_with_a_constant_denominator_is_a_scaled_mean() {
        let mut arm = CoMoments::new();
        for x in [1.0, 4.0, 2.0, 7.0] {
            arm.push(x, 2.0);
        }
        let r = ratio_stats(&arm).unwrap();
        assert!((r.mean - 3.5 / 2.0).abs() < 1e-15);
        assert!((r.variance - arm.variance_x() / 4.0).abs() < 1e-12);
    }

    fn arms(noise: impl Fn(u32) -> f64) -> (CoMoments, CoMoments) {
        let (mut a, mut b) = (CoMoments::new(), CoMoments::new());
        for i in 0..400_u32 {
            let pre = f64::from(i % 37);
            a.push(2.0 * pre + noise(i), pre);
            b.push(2.0 * pre + 1.0 + noise(i + 7), pre + 0.5 * f64::from(i % 3));
        }
        (a, b)
    }

    #[test]
    fn cuped_removes_the_explained_variance() {
        let (a, b) = arms(|i| f64::from((i * 13) % 7) - 3.0);
        let adjusted = cuped(&a, &b).unwrap();
        assert!(adjusted.theta() > 1.5 && adjusted.theta() < 2.5);
        let raw = welch_absolute(
            &SampleStats::from(a.x()),
            &SampleStats::from(b.x()),
            0.05,
            Alternative::TwoSided,
        )
        .unwrap();
        let cu = adjusted.absolute(0.05, Alternative::TwoSided).unwrap();
        assert!(cu.se < raw.se / 3.0, "{} vs {}", cu.se, raw.se);
        assert!(adjusted.control().variance < a.variance_x() / 10.0);
    }

    #[test]
    fn a_constant_covariate_leaves_the_arms_unadjusted() {
        let (mut a, mut b) = (CoMoments::new(), CoMoments::new());
        for x in [1.0, 3.0, 2.0, 8.0] {
            a.push(x, 5.0);
            b.push(x + 1.0, 5.0);
        }
        let adjusted = cuped(&a, &b).unwrap();
        assert_eq!(adjusted.theta(), 0.0);
        assert_eq!(adjusted.control(), SampleStats::from(a.x()));
        let plain = relative_lift(
            &SampleStats::from(a.x()),
            &SampleStats::from(b.x()),
            0.05,
            Alternative::TwoSided,
        )
        .unwrap();
        let r = adjusted.relative(0.05, Alternative::TwoSided).unwrap();
        assert!((r.estimate - plain.estimate).abs() < 1e-15 && (r.se - plain.se).abs() < 1e-15);
    }
}
