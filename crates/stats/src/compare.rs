//! One-call comparison of a treatment arm with its baseline: Welch, relative lift, effect sizes, sequential and Bayesian.

use serde::{Deserialize, Serialize};

use crate::bayes::{bayesian, Bayes, NormalPrior};
use crate::effect::{effect_sizes, EffectSizes};
use crate::error::StatsError;
use crate::frequentist::{relative_lift, welch_absolute, Alternative, Estimate};
use crate::moments::SampleStats;
use crate::sequential::{sequential, SequentialEstimate};

/// What a full comparison computes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareSettings {
    /// The significance level (and 1 − credible level).
    pub alpha: f64,
    /// The alternative of the frequentist tests.
    pub alternative: Alternative,
    /// The confidence-sequence tuning τ; `None` skips the sequential analysis.
    pub sequential_tau: Option<f64>,
    /// A proper prior on the relative lift; `None` is the flat prior.
    pub prior: Option<NormalPrior>,
    /// Whether the metric is binary (adds Cohen's h).
    pub binary: bool,
    /// Whether smaller is better (flips chance to win and risks).
    pub inverse: bool,
}

impl Default for CompareSettings {
    /// Alpha 0.05, two-sided, no sequential analysis, flat prior, continuous metric where larger is better.
    fn default() -> Self {
        Self {
            alpha: 0.05,
            alternative: Alternative::TwoSided,
            sequential_tau: None,
            prior: None,
            binary: false,
            inverse: false,
        }
    }
}

/// Everything a report shows for one treatment-vs-baseline comparison.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Welch's test on mean_T − mean_B.
    pub absolute: Estimate,
    /// The delta-method relative lift; `None` when the baseline mean is 0.
    pub relative: Option<Estimate>,
    /// Cohen's d, Hedges' g (and h for binary metrics); `None` when the pooled sd is 0.
    pub effect_sizes: Option<EffectSizes>,
    /// The confidence sequence on the absolute difference, when requested.
    pub sequential: Option<SequentialEstimate>,
    /// The confidence sequence on the relative lift, when requested and defined.
    pub sequential_relative: Option<SequentialEstimate>,
    /// The Bayesian model on the relative lift (gbstats' default scale);
    /// `None` when the baseline mean is 0.
    pub bayes: Option<Bayes>,
}

/// Compares `treatment` with `control`. Fails only when the absolute
/// comparison itself is impossible (n < 2, zero standard error, bad alpha).
pub fn compare(
    control: &SampleStats,
    treatment: &SampleStats,
    settings: &CompareSettings,
) -> Result<Comparison, StatsError> {
    let absolute = welch_absolute(control, treatment, settings.alpha, settings.alternative)?;
    let relative = match relative_lift(control, treatment, settings.alpha, settings.alternative) {
        Ok(r) => Some(r),
        Err(StatsError::ZeroBaseline | StatsError::ZeroVariance(_)) => None,
        Err(e) => return Err(e),
    };
    let effect_sizes = effect_sizes(control, treatment, settings.binary).ok();
    let n_total = control.n + treatment.n;
    let (sequential_abs, sequential_rel) = match settings.sequential_tau {
        None => (None, None),
        Some(tau) => {
            let run = |e: &Estimate| {
                sequential(
                    e.estimate,
                    e.se,
                    n_total,
                    settings.alpha,
                    tau,
                    settings.alternative,
                )
            };
            let rel = match &relative {
                Some(r) => Some(run(r)?),
                None => None,
            };
            (Some(run(&absolute)?), rel)
        }
    };
    let bayes = match &relative {
        Some(r) => Some(bayesian(
            r.estimate,
            r.se,
            settings.prior,
            settings.alpha,
            settings.inverse,
        )?),
        None => None,
    };
    Ok(Comparison {
        absolute,
        relative,
        effect_sizes,
        sequential: sequential_abs,
        sequential_relative: sequential_rel,
        bayes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_comparison_fills_what_it_can() {
        let control = SampleStats::proportion(1000.0, 100.0);
        let treatment = SampleStats::proportion(1000.0, 130.0);
        let settings = CompareSettings {
            sequential_tau: Some(crate::DEFAULT_TAU),
            binary: true,
            ..CompareSettings::default()
        };
        let c = compare(&control, &treatment, &settings).unwrap();
        assert!((c.absolute.estimate - 0.03).abs() < 1e-15);
        assert!(c.relative.is_some() && c.bayes.is_some());
        assert!(c.sequential.is_some() && c.sequential_relative.is_some());
        assert!(c.effect_sizes.unwrap().cohens_h.is_some());

        let zero = SampleStats::new(100.0, 0.0, 1.0);
        let c = compare(
            &zero,
            &SampleStats::new(100.0, 0.5, 1.0),
            &CompareSettings::default(),
        )
        .unwrap();
        assert!(c.relative.is_none() && c.bayes.is_none() && c.sequential.is_none());
        assert!(compare(
            &SampleStats::new(1.0, 0.0, 1.0),
            &zero,
            &CompareSettings::default()
        )
        .is_err());
    }
}
