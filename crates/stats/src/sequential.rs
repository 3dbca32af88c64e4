//! Always-valid inference: the asymptotic confidence sequences of Waudby-Smith et al. as gbstats computes them.

use serde::{Deserialize, Serialize};

use crate::error::{check_alpha, finite, positive, StatsError};
use crate::frequentist::Alternative;

/// gbstats' default tuning parameter τ of the confidence sequence.
pub const DEFAULT_TAU: f64 = 5000.0;

/// gbstats' bisection floor for one-sided p-values; liftlab reports the
/// exact p-value below it (see [`sequential_with_rho`]).
pub const ONE_SIDED_MIN_P: f64 = 1e-5;

/// The largest one-sided p-value reported (gbstats' bisection ceiling), and
/// so the largest one-sided sequential alpha.
pub const ONE_SIDED_MAX_P: f64 = 0.4999;

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

/// ρ of the normal mixture, tuned so the boundary is tightest near τ units:
/// sqrt((−2 ln a + ln(−2 ln a + 1))/τ) with a = α two-sided and 2α one-sided.
pub fn rho(alpha: f64, tau: f64, two_sided: bool) -> f64 {
    let a = if two_sided { alpha } else { 2.0 * alpha };
    let l = -2.0 * a.ln();
    ((l + (l + 1.0).ln()) / tau).sqrt()
}

/// The half-width of the confidence sequence divided by the standard error,
/// after `n_total` units, for a given ρ: the sequential counterpart of a z
/// quantile. Two-sided: √(N·2(Nρ²+1)·ln(√(Nρ²+1)/α)/(Nρ)²); one-sided:
/// √(N·2(Nρ²+1)·ln(1 + √(Nρ²+1)/(2α))/(Nρ)²).
pub fn halfwidth_factor(n_total: f64, alpha: f64, rho: f64, two_sided: bool) -> f64 {
    let nr2p1 = n_total * rho * rho + 1.0;
    let nr = n_total * rho;
    let log_term = if two_sided {
        (nr2p1.sqrt() / alpha).ln()
    } else {
        (nr2p1.sqrt() / (2.0 * alpha)).ln_1p()
    };
    (n_total * 2.0 * nr2p1 * log_term / (nr * nr)).sqrt()
}

/// The confidence sequence for `estimate` with standard error `se` after
/// `n_total` units (both arms together), at level alpha with tuning τ.
///
/// Two-sided: estimate ± half-width, p = min(1, 1/E) with the mixture
/// e-value E (equation 155 of arXiv 2103.06476v7). One-sided (alpha at most
/// [`ONE_SIDED_MAX_P`]): ρ uses 2α and the one-sided half-width; the p-value
/// is the α at which the bound touches 0 with ρ held fixed — gbstats finds
/// it by bisection, this solves it in closed form. Either way p < alpha
/// exactly when the interval excludes 0 (for one-sided, when its finite
/// bound lies beyond 0); [`sequential_with_rho`] says why.
pub fn sequential(
    estimate: f64,
    se: f64,
    n_total: f64,
    alpha: f64,
    tau: f64,
    alternative: Alternative,
) -> Result<SequentialEstimate, StatsError> {
    positive("tau", tau)?;
    check_alpha(alpha)?;
    let two_sided = alternative == Alternative::TwoSided;
    sequential_with_rho(
        estimate,
        se,
        n_total,
        alpha,
        rho(alpha, tau, two_sided),
        alternative,
    )
}

/// The confidence sequence at level alpha for a mixture whose ρ is given
/// rather than tuned to alpha: what [`sequential`] computes once ρ is known.
///
/// The p-value depends on ρ but not on alpha, and for a fixed ρ the
/// interval at level α excludes 0 exactly when p < α: two-sided, |estimate|
/// exceeds the half-width exactly when ln E > ln(1/α); one-sided, the bound
/// crosses 0 exactly at the α that the p-value solves for. So an interval
/// at another level that must agree with this p-value (a multiple-testing
/// adjusted interval at [`adjusted_alpha`](crate::adjusted_alpha)) keeps
/// the family's ρ; with ρ re-tuned to the new level the interval answers a
/// different test. gbstats holds ρ fixed in the same way when it searches
/// for the one-sided p-value.
///
/// One-sided p-values are reported up to [`ONE_SIDED_MAX_P`] (gbstats'
/// bisection ceiling, also for an effect in the other direction), so
/// one-sided alpha may not exceed it: above it a capped p would read as
/// significant while the interval still covers 0. gbstats also floors them
/// at [`ONE_SIDED_MIN_P`], where its bisection starts. The closed form needs
/// no floor, and a floor would report p ≥ α beside an interval that
/// excludes 0 whenever α ≤ 1e-5 (as an adjusted level can be), so none is
/// applied.
pub fn sequential_with_rho(
    estimate: f64,
    se: f64,
    n_total: f64,
    alpha: f64,
    rho: f64,
    alternative: Alternative,
) -> Result<SequentialEstimate, StatsError> {
    finite("estimate", estimate)?;
    if se == 0.0 {
        return Err(StatsError::ZeroVariance("the estimate"));
    }
    positive("se", se)?;
    positive("n_total", n_total)?;
    check_alpha(alpha)?;
    let two_sided = alternative == Alternative::TwoSided;
    if !two_sided && alpha > ONE_SIDED_MAX_P {
        return Err(StatsError::InvalidParameter {
            name: "alpha",
            value: alpha,
            expected: "at most 0.4999 for a one-sided sequential test",
        });
    }
    positive("rho", rho)?;
    let half = se * halfwidth_factor(n_total, alpha, rho, two_sided);
    let nr2p1 = n_total * rho * rho + 1.0;
    match alternative {
        Alternative::TwoSided => {
            // ln E = ρ²·s/(2(Nρ²+1)) − ln√(Nρ²+1), with s = (estimate/se)²·N.
            let s = (estimate / se).powi(2) * n_total;
            let log_e = rho * rho * s / (2.0 * nr2p1) - 0.5 * nr2p1.ln();
            Ok(SequentialEstimate {
                ci_low: estimate - half,
                ci_high: estimate + half,
                p_value: (-log_e).exp().min(1.0),
            })
        }
        Alternative::Greater => Ok(SequentialEstimate {
            ci_low: estimate - half,
            ci_high: f64::INFINITY,
            p_value: one_sided_p(estimate, se, n_total, rho),
        }),
        Alternative::Less => Ok(SequentialEstimate {
            ci_low: f64::NEG_INFINITY,
            ci_high: estimate + half,
            p_value: one_sided_p(-estimate, se, n_total, rho),
        }),
    }
}

/// The one-sided always-valid p-value for an effect `signed` in the tested
/// direction: the α at which the half-width (with ρ fixed) equals `signed`.
///
/// The half-width² is A·ln(1 + c/(2α)) with A = se²·N·2(Nρ²+1)/(Nρ)² and
/// c = √(Nρ²+1), so α = c / (2·(exp(signed²/A) − 1)).
fn one_sided_p(signed: f64, se: f64, n_total: f64, rho: f64) -> f64 {
    if signed <= 0.0 {
        return ONE_SIDED_MAX_P;
    }
    let nr2p1 = n_total * rho * rho + 1.0;
    let nr = n_total * rho;
    let a = se * se * n_total * 2.0 * nr2p1 / (nr * nr);
    // exp_m1 overflows to +∞ for overwhelming evidence, giving p = 0.
    let alpha = nr2p1.sqrt() / (2.0 * (signed * signed / a).exp_m1());
    alpha.min(ONE_SIDED_MAX_P)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sided_sequential_needs_alpha_at_most_the_p_ceiling() {
        for alpha in [0.5, 0.49995] {
            assert!(matches!(
                sequential(1.0, 1.0, 100.0, alpha, DEFAULT_TAU, Alternative::Greater),
                Err(StatsError::InvalidParameter { name: "alpha", .. })
            ));
        }
        assert!(sequential(1.0, 1.0, 100.0, 0.4999, DEFAULT_TAU, Alternative::Less).is_ok());
        assert!(sequential(1.0, 1.0, 100.0, 0.5, DEFAULT_TAU, Alternative::TwoSided).is_ok());
        assert_eq!(
            sequential(1.0, 0.0, 100.0, 0.05, DEFAULT_TAU, Alternative::TwoSided),
            Err(StatsError::ZeroVariance("the estimate"))
        );
    }

    #[test]
    fn evidence_lowers_the_p_value_and_the_interval_agrees_with_it() {
        let mut last = 1.0;
        for estimate in [0.0, 0.5, 1.0, 2.0, 4.0] {
            let s = sequential(
                estimate,
                0.5,
                5000.0,
                0.05,
                DEFAULT_TAU,
                Alternative::TwoSided,
            )
            .unwrap();
            assert!(s.p_value <= last);
            last = s.p_value;
            // An interval excluding 0 at alpha goes with p < alpha, and back.
            assert_eq!(s.ci_low > 0.0, s.p_value < 0.05, "estimate {estimate}");
        }
        let one = sequential(2.0, 0.5, 5000.0, 0.05, DEFAULT_TAU, Alternative::Greater).unwrap();
        assert_eq!(one.ci_low > 0.0, one.p_value < 0.05);
        assert_eq!(
            sequential(-2.0, 0.5, 5000.0, 0.05, DEFAULT_TAU, Alternative::Greater)
                .unwrap()
                .p_value,
            ONE_SIDED_MAX_P
        );
        // Below gbstats' floor the p-value stays exact, so it still agrees
        // with an interval at a level below the floor.
        let strong = sequential(-5.0, 0.5, 5000.0, 1e-6, DEFAULT_TAU, Alternative::Less).unwrap();
        assert!(0.0 < strong.p_value && strong.p_value < ONE_SIDED_MIN_P);
        assert!(strong.ci_high < 0.0 && strong.p_value < 1e-6);
        assert_eq!(
            sequential(-50.0, 0.5, 5000.0, 0.05, DEFAULT_TAU, Alternative::Less)
                .unwrap()
                .p_value,
            0.0
        );
    }
}
