//! Power analysis: sample size per arm, achieved power and minimum detectable effect, fixed and sequential, plus gbstats' mid-experiment scaling factor.

use serde::{Deserialize, Serialize};

use crate::bayes::NormalPrior;
use crate::dist::{norm_cdf, norm_ppf, norm_sf};
use crate::error::{check_alpha, finite, positive, StatsError};
use crate::frequentist::Alternative;
use crate::moments::SampleStats;
use crate::sequential::{halfwidth_factor, rho};

/// How the experiment will be analysed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Design {
    /// One look at a fixed horizon.
    #[default]
    Fixed,
    /// Continuous monitoring with the confidence sequence of tuning `tau`.
    Sequential {
        /// The tuning parameter τ (gbstats' default is 5000).
        tau: f64,
    },
}

/// Settings shared by the power functions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PowerSettings {
    /// The significance level.
    pub alpha: f64,
    /// The alternative of the planned test.
    pub alternative: Alternative,
    /// Fixed horizon or sequential.
    pub design: Design,
    /// Whether the effect is relative ((μ_T − μ_B)/μ_B) or absolute.
    pub relative: bool,
}

impl Default for PowerSettings {
    /// Two-sided, alpha 0.05, fixed horizon, relative effect (GrowthBook's calculator).
    fn default() -> Self {
        Self {
            alpha: 0.05,
            alternative: Alternative::TwoSided,
            design: Design::Fixed,
            relative: true,
        }
    }
}

/// The baseline metric a power calculation assumes: per-unit mean and
/// variance (p(1−p) for a conversion rate), shared by both arms.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// The per-unit mean of the baseline arm.
    pub mean: f64,
    /// The per-unit variance.
    pub variance: f64,
}

impl Baseline {
    /// A binary metric with conversion rate `p`: variance p(1−p).
    pub fn proportion(p: f64) -> Self {
        Self {
            mean: p,
            variance: p * (1.0 - p),
        }
    }
}

/// GrowthBook's `frequentistVariance`: the variance of the estimated effect
/// (absolute var_a/n_a + var_b/n_b, or the delta-method relative variance
/// var_b/(μ_a²n_b) + var_a·μ_b²/(μ_a⁴n_a)).
pub fn frequentist_variance(
    a: &SampleStats,
    b: &SampleStats,
    relative: bool,
) -> Result<f64, StatsError> {
    a.check("arm a", f64::MIN_POSITIVE)?;
    b.check("arm b", f64::MIN_POSITIVE)?;
    if !relative {
        return Ok(a.variance / a.n + b.variance / b.n);
    }
    if a.mean == 0.0 {
        return Err(StatsError::ZeroBaseline);
    }
    let ma2 = a.mean * a.mean;
    Ok(b.variance / (ma2 * b.n) + a.variance * b.mean * b.mean / (ma2 * ma2 * a.n))
}

/// The upper-tail critical value z* of the planned test.
fn z_star(alpha: f64, alternative: Alternative) -> f64 {
    match alternative {
        Alternative::TwoSided => norm_ppf(1.0 - alpha / 2.0),
        Alternative::Greater | Alternative::Less => norm_ppf(1.0 - alpha),
    }
}

/// The standard error of the effect with `n_per_arm` units per arm, inflated
/// for a sequential design so that rejecting at z* matches the confidence
/// sequence: SE·(half-width factor at N = 2·n_per_arm)/z*, as GrowthBook's
/// `sequentialPowerStandardError` does.
fn design_se(
    baseline: &Baseline,
    effect: f64,
    n_per_arm: f64,
    settings: &PowerSettings,
) -> Result<f64, StatsError> {
    let mean_b = if settings.relative {
        baseline.mean * (1.0 + effect)
    } else {
        baseline.mean + effect
    };
    let a = SampleStats::new(n_per_arm, baseline.mean, baseline.variance);
    let b = SampleStats::new(n_per_arm, mean_b, baseline.variance);
    let se = frequentist_variance(&a, &b, settings.relative)?.sqrt();
    Ok(match settings.design {
        Design::Fixed => se,
        Design::Sequential { tau } => {
            let two_sided = settings.alternative == Alternative::TwoSided;
            let r = rho(settings.alpha, tau, two_sided);
            let factor = halfwidth_factor(2.0 * n_per_arm, settings.alpha, r, two_sided);
            se * factor / z_star(settings.alpha, settings.alternative)
        }
    })
}

/// Validates the settings and the baseline.
fn check_settings(baseline: &Baseline, settings: &PowerSettings) -> Result<(), StatsError> {
    check_alpha(settings.alpha)?;
    finite("baseline mean", baseline.mean)?;
    positive("baseline variance", baseline.variance)?;
    if let Design::Sequential { tau } = settings.design {
        positive("tau", tau)?;
        if settings.alternative != Alternative::TwoSided && settings.alpha >= 0.5 {
            return Err(StatsError::InvalidParameter {
                name: "alpha",
                value: settings.alpha,
                expected: "below 0.5 for a one-sided sequential test",
            });
        }
    }
    if settings.relative && baseline.mean == 0.0 {
        return Err(StatsError::ZeroBaseline);
    }
    Ok(())
}

/// Checks a target power: it must exceed alpha (the power at no effect) and be below 1.
fn check_power(power: f64, alpha: f64) -> Result<f64, StatsError> {
    if alpha < power && power < 1.0 {
        Ok(power)
    } else {
        Err(StatsError::InvalidParameter {
            name: "power",
            value: power,
            expected: "in (alpha, 1)",
        })
    }
}

/// The power to detect `effect` (on the scale `settings.relative` chooses)
/// with `n_per_arm` units in each of the two compared arms.
///
/// With d = effect/SE: two-sided 1 − Φ(z* − d) + Φ(−z* − d); `Greater`
/// 1 − Φ(z* − d); `Less` Φ(−z* − d) (GrowthBook's `powerEstFrequentist`,
/// normal approximation). A sequential design inflates SE as
/// `design_se` describes.
pub fn achieved_power(
    baseline: &Baseline,
    effect: f64,
    n_per_arm: f64,
    settings: &PowerSettings,
) -> Result<f64, StatsError> {
    check_settings(baseline, settings)?;
    finite("effect", effect)?;
    positive("n_per_arm", n_per_arm)?;
    let se = design_se(baseline, effect, n_per_arm, settings)?;
    let z = z_star(settings.alpha, settings.alternative);
    let d = effect / se;
    let power = match settings.alternative {
        Alternative::TwoSided => norm_sf(z - d) + norm_cdf(-z - d),
        Alternative::Greater => norm_sf(z - d),
        Alternative::Less => norm_cdf(-z - d),
    };
    Ok(power.clamp(0.0, 1.0))
}

/// Bisection iterations: enough to pin a root in a bracket of 2^60 widths
/// down to the last bits of an f64.
const BISECTION_STEPS: usize = 200;

/// Finds x in [lo, hi] with f(x) = 0 for an f that is increasing there and
/// changes sign, to full floating-point precision.
fn bisect(
    mut lo: f64,
    mut hi: f64,
    f: impl Fn(f64) -> Result<f64, StatsError>,
) -> Result<f64, StatsError> {
    for _ in 0..BISECTION_STEPS {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if f(mid)? < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(0.5 * (lo + hi))
}

/// The minimum detectable effect at `power` with `n_per_arm` units per arm:
/// positive for two-sided and `Greater`, negative for `Less`.
///
/// Solves `achieved_power` = power exactly (GrowthBook's closed form drops the
/// far tail, a difference below 1e-6 at usual powers). A relative effect
/// saturates (the treatment variance grows with it), so large targets at
/// small n have no solution; relative decreases are searched down to −100%.
pub fn mde_at(
    baseline: &Baseline,
    n_per_arm: f64,
    power: f64,
    settings: &PowerSettings,
) -> Result<f64, StatsError> {
    check_settings(baseline, settings)?;
    positive("n_per_arm", n_per_arm)?;
    check_power(power, settings.alpha)?;
    let sign = if settings.alternative == Alternative::Less {
        -1.0
    } else {
        1.0
    };
    let gap = |magnitude: f64| {
        Ok(achieved_power(baseline, sign * magnitude, n_per_arm, settings)? - power)
    };
    // One standard error of the effect at no effect, the natural scale of the search.
    let scale = if settings.relative {
        baseline.mean.abs()
    } else {
        1.0
    };
    let unit = (2.0 * baseline.variance / n_per_arm).sqrt() / scale;
    let limit = if settings.relative && sign < 0.0 {
        1.0
    } else {
        unit * 1e9
    };
    let mut hi = unit.min(limit);
    while gap(hi)? < 0.0 {
        if hi >= limit {
            return Err(StatsError::NoSolution(
                "the target power is not reachable at this sample size",
            ));
        }
        hi = (hi * 2.0).min(limit);
    }
    Ok(sign * bisect(0.0, hi, gap)?)
}

/// The number of units per arm (a real number; round up) that gives `power`
/// to detect `effect`, found by bisection on `achieved_power`.
pub fn sample_size_per_arm(
    baseline: &Baseline,
    effect: f64,
    power: f64,
    settings: &PowerSettings,
) -> Result<f64, StatsError> {
    check_settings(baseline, settings)?;
    finite("effect", effect)?;
    check_power(power, settings.alpha)?;
    let wrong_way = match settings.alternative {
        Alternative::TwoSided => effect == 0.0,
        Alternative::Greater => effect <= 0.0,
        Alternative::Less => effect >= 0.0,
    };
    if wrong_way {
        return Err(StatsError::NoSolution(
            "the effect is zero or points away from the alternative",
        ));
    }
    const MAX_N: f64 = 1e15;
    let gap = |n: f64| Ok(achieved_power(baseline, effect, n, settings)? - power);
    let mut lo = 1.0;
    if gap(lo)? >= 0.0 {
        return Ok(lo);
    }
    let mut hi = 2.0;
    while gap(hi)? < 0.0 {
        if hi >= MAX_N {
            return Err(StatsError::NoSolution(
                "the target power needs more than 1e15 units per arm",
            ));
        }
        lo = hi;
        hi *= 2.0;
    }
    bisect(lo, hi, gap)
}
/// Settings of gbstats' mid-experiment power analysis.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MidExperimentSettings {
    /// The target power (gbstats' default 0.8).
    pub target_power: f64,
    /// The target minimum detectable effect, on the scale `relative` chooses.
    pub target_mde: f64,
    /// The significance level.
    pub alpha: f64,
    /// The number of goal metrics: the target power per metric is
    /// target_power^(1/num_goal_metrics).
    pub num_goal_metrics: u32,
    /// The number of variations including control.
    pub num_variations: u32,
    /// Whether p-values are corrected, which splits alpha over
    /// (num_variations − 1)·num_goal_metrics tests.
    pub p_value_corrected: bool,
    /// Whether the effect (and `target_mde`) is relative.
    pub relative: bool,
    /// Fixed or sequential frequentist analysis; ignored when `prior` is set.
    pub design: Design,
    /// A proper prior on the effect selects the Bayesian calculation.
    pub prior: Option<NormalPrior>,
}

impl Default for MidExperimentSettings {
    /// gbstats' defaults: power 0.8, MDE 1% relative, alpha 0.05, one goal
    /// metric, two variations, no correction, fixed horizon, no prior.
    fn default() -> Self {
        Self {
            target_power: 0.8,
            target_mde: 0.01,
            alpha: 0.05,
            num_goal_metrics: 1,
            num_variations: 2,
            p_value_corrected: false,
            relative: true,
            design: Design::Fixed,
            prior: None,
        }
    }
}

/// gbstats' mid-experiment "scaling factor": how many times the current
/// pairwise sample must be added to reach the target power for the target MDE.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MidExperimentPower {
    /// Additional users = scaling_factor × current pairwise n (0 when already powered).
    pub scaling_factor: f64,
    /// The additional users, scaling_factor × pairwise n.
    pub additional_units: f64,
    /// The power reached at that factor.
    pub power: f64,
}

/// Runs gbstats' mid-experiment power search on the current arm statistics:
/// the standard error of the absolute or relative effect (per
/// `settings.relative`) and the pairwise sample n_B + n_T.
pub fn mid_experiment_power(
    control: &SampleStats,
    treatment: &SampleStats,
    settings: &MidExperimentSettings,
) -> Result<MidExperimentPower, StatsError> {
    control.check("control arm", 2.0)?;
    treatment.check("treatment arm", 2.0)?;
    let variance = frequentist_variance(control, treatment, settings.relative)?;
    mid_experiment_power_from_se(variance.sqrt(), control.n + treatment.n, settings)
}

/// The doublings gbstats tries before giving up (2^27 ≈ 1.3e8 times the current sample).
const MAX_DOUBLINGS: usize = 27;
/// gbstats' bisection iterations and its tolerance on power.
const MAX_BISECTIONS: usize = 100;
const POWER_TOLERANCE: f64 = 1e-5;

/// gbstats' `MidExperimentPower.calculate_scaling_factor` for an effect with
/// standard error `se` measured on `pairwise_n` units: doubling until the
/// power reaches the target, then bisection until it is within 1e-5 of it.
/// Reproducing its search (rather than solving exactly) keeps the factor
/// identical to gbstats'.
pub fn mid_experiment_power_from_se(
    se: f64,
    pairwise_n: f64,
    settings: &MidExperimentSettings,
) -> Result<MidExperimentPower, StatsError> {
    if se == 0.0 {
        return Err(StatsError::ZeroVariance("the effect"));
    }
    positive("se", se)?;
    positive("pairwise_n", pairwise_n)?;
    check_alpha(settings.alpha)?;
    finite("target_mde", settings.target_mde)?;
    if settings.num_goal_metrics == 0 || settings.num_variations < 2 {
        return Err(StatsError::InvalidParameter {
            name: "num_goal_metrics / num_variations",
            value: f64::from(settings.num_goal_metrics.min(settings.num_variations)),
            expected: "at least 1 goal metric and 2 variations",
        });
    }
    if !(0.0 < settings.target_power && settings.target_power < 1.0) {
        return Err(StatsError::InvalidParameter {
            name: "target_power",
            value: settings.target_power,
            expected: "in (0, 1)",
        });
    }
    if let Some(prior) = settings.prior {
        finite("prior mean", prior.mean)?;
        positive("prior variance", prior.variance)?;
    }
    if let (None, Design::Sequential { tau }) = (settings.prior, settings.design) {
        positive("tau", tau)?;
    }
    let num_tests = if settings.p_value_corrected {
        f64::from(settings.num_variations - 1) * f64::from(settings.num_goal_metrics)
    } else {
        1.0
    };
    let alpha = settings.alpha / num_tests;
    let multiplier = norm_ppf(1.0 - alpha / 2.0);
    let target = settings
        .target_power
        .powf(1.0 / f64::from(settings.num_goal_metrics));
    let mde = settings.target_mde.abs();
    let power = |factor: f64| -> f64 {
        let variance = se * se / (1.0 + factor);
        let sd = variance.sqrt();
        if let Some(prior) = settings.prior {
            let precision = 1.0 / prior.variance + 1.0 / variance;
            let n1 = variance * precision.sqrt() * multiplier;
            let n2 = variance * prior.mean / prior.variance;
            return norm_sf((n1 - n2 - mde) / sd) + norm_cdf(-(n1 + n2 + mde) / sd);
        }
        let half = match settings.design {
            Design::Fixed => multiplier * sd,
            Design::Sequential { tau } => {
                let n_total = pairwise_n * (1.0 + factor);
                let r = rho(alpha, tau, true);
                se * (pairwise_n / n_total).sqrt() * halfwidth_factor(n_total, alpha, r, true)
            }
        };
        norm_sf((half - mde) / sd) + norm_cdf(-(half + mde) / sd)
    };
    let result = |factor: f64, p: f64| MidExperimentPower {
        scaling_factor: factor,
        additional_units: factor * pairwise_n,
        power: p,
    };
    let already = power(0.0);
    if already > target {
        return Ok(result(0.0, already));
    }
    let mut factor = 1.0;
    let mut current = power(factor);
    for _ in 0..MAX_DOUBLINGS {
        if current >= target {
            break;
        }
        factor *= 2.0;
        current = power(factor);
    }
    if current < target {
        return Err(StatsError::NoSolution(
            "the target power needs more than 2^27 times the current sample",
        ));
    }
    let (mut lower, mut upper) = (0.0, factor);
    let mut diff = current - target;
    for _ in 0..MAX_BISECTIONS {
        if diff > 0.0 {
            upper = factor;
        } else {
            lower = factor;
        }
        factor = 0.5 * (lower + upper);
        current = power(factor);
        diff = current - target;
        if diff.abs() < POWER_TOLERANCE {
            return Ok(result(factor, current));
        }
    }
    Err(StatsError::NoSolution(
        "the scaling-factor bisection did not converge",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Searches solve to near machine precision.
    const SOLVED: f64 = 1e-9;

    fn conversion() -> Baseline {
        Baseline::proportion(0.2)
    }

    #[test]
    fn sample_size_and_power_invert_each_other() {
        for settings in [
            PowerSettings::default(),
            PowerSettings {
                design: Design::Sequential { tau: 5000.0 },
                ..PowerSettings::default()
            },
            PowerSettings {
                alternative: Alternative::Greater,
                relative: false,
                ..PowerSettings::default()
            },
        ] {
            let effect = if settings.relative { 0.05 } else { 0.01 };
            let n = sample_size_per_arm(&conversion(), effect, 0.8, &settings).unwrap();
            let power = achieved_power(&conversion(), effect, n, &settings).unwrap();
            assert!((power - 0.8).abs() < SOLVED, "{settings:?}: {power}");
            let mde = mde_at(&conversion(), n, 0.8, &settings).unwrap();
            assert!(
                ((mde - effect) / effect).abs() < 1e-7,
                "{settings:?}: {mde}"
            );
        }
    }

    #[test]
    fn sequential_designs_need_more_units() {
        let fixed = PowerSettings::default();
        let seq = PowerSettings {
            design: Design::Sequential { tau: 5000.0 },
            ..fixed
        };
        let n_fixed = sample_size_per_arm(&conversion(), 0.05, 0.8, &fixed).unwrap();
        let n_seq = sample_size_per_arm(&conversion(), 0.05, 0.8, &seq).unwrap();
        assert!(n_seq > n_fixed);
    }

    #[test]
    fn a_decrease_has_a_negative_mde_and_wrong_way_effects_have_no_size() {
        let less = PowerSettings {
            alternative: Alternative::Less,
            ..PowerSettings::default()
        };
        let mde = mde_at(&conversion(), 10_000.0, 0.8, &less).unwrap();
        assert!(mde < 0.0);
        assert!(
            (achieved_power(&conversion(), mde, 10_000.0, &less).unwrap() - 0.8).abs() < SOLVED
        );
        assert!(matches!(
            sample_size_per_arm(&conversion(), 0.05, 0.8, &less),
            Err(StatsError::NoSolution(_))
        ));
        assert!(matches!(
            sample_size_per_arm(&conversion(), 0.05, 0.01, &PowerSettings::default()),
            Err(StatsError::InvalidParameter { name: "power", .. })
        ));
    }

    #[test]
    fn a_relative_effect_saturates_at_tiny_samples() {
        // With 3 units per arm of a noisy metric no relative lift reaches 99% power.
        let noisy = Baseline {
            mean: 1.0,
            variance: 100.0,
        };
        assert!(matches!(
            mde_at(&noisy, 3.0, 0.99, &PowerSettings::default()),
            Err(StatsError::NoSolution(_))
        ));
    }
}
