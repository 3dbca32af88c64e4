//! Per-metric results: arm summaries, treatment-versus-baseline comparisons, the correction across metrics, verdicts, guardrails and harm.

use liftlab_stats::{
    benjamini_hochberg, compare, holm, Alternative, CompareSettings, Moments, SampleStats,
};

use super::types::{
    ArmStats, BayesResult, ComparisonResult, EffectSize, GuardrailStatus, Harm, Interval,
    MetricResult, SequentialResult, Verdict,
};
use super::AggIndex;
use crate::spec::{Correction, Direction, ExperimentSpec, Metric, MetricKind, MetricRole};

/// Converts a count to `f64`; exact below 2^53, far beyond any unit count.
pub(crate) fn count_f64(n: u64) -> f64 {
    // Exact for every count liftlab can hold.
    n as f64
}

/// Converts a collection length to `f64`; exact for any length that fits in memory.
pub(crate) fn len_f64(n: usize) -> f64 {
    // Lengths stay far below 2^53, where the conversion is exact.
    n as f64
}

/// A non-negative whole number held in an `f64` as a count; `None` when it is not finite,
/// negative or beyond 2^53 (where `f64` stops being exact).
pub(crate) fn whole(x: f64) -> Option<u64> {
    let x = x.ceil();
    // In [0, 2^53] every integer-valued f64 converts to u64 exactly.
    (x.is_finite() && (0.0..=9_007_199_254_740_992.0).contains(&x)).then_some(x as u64)
}

/// One arm's summary from its moments (and inverse-propensity sums under a bandit).
pub(crate) fn arm_stats(arm: &str, moments: &Moments, ipw: Option<(f64, f64)>) -> ArmStats {
    let ipw_mean = ipw.and_then(|(weight, weighted_sum)| {
        let mean = weighted_sum / weight;
        (weight > 0.0 && mean.is_finite()).then_some(mean)
    });
    ArmStats {
        arm: arm.to_string(),
        n: moments.n(),
        mean: moments.mean(),
        sd: moments.sd(),
        ipw_mean,
    }
}

/// Whether the analysis computes the sequential test for this metric: when the spec asks for
/// sequential analysis, and for guardrails when it asks to pause on harm.
fn wants_sequential(spec: &ExperimentSpec, metric: &Metric) -> bool {
    let analysis = spec.analysis();
    analysis.sequential()
        || (analysis.auto_pause_on_harm() && metric.role() == MetricRole::Guardrail)
}

/// The settings of every comparison of `metric`.
fn settings(spec: &ExperimentSpec, metric: &Metric) -> CompareSettings {
    let analysis = spec.analysis();
    CompareSettings {
        alpha: analysis.alpha(),
        alternative: Alternative::TwoSided,
        sequential_tau: wants_sequential(spec, metric).then_some(analysis.sequential_tuning()),
        prior: None,
        binary: metric.kind() == MetricKind::Binary,
        inverse: metric.direction() == Direction::Decrease,
    }
}

/// Compares `treatment` with `control` on one metric; never fails (a note says what is missing).
pub(crate) fn comparison(
    spec: &ExperimentSpec,
    metric: &Metric,
    baseline: &str,
    arm: &str,
    control: &Moments,
    treatment: &Moments,
) -> ComparisonResult {
    let mut out = ComparisonResult {
        arm: arm.to_string(),
        baseline: baseline.to_string(),
        absolute: None,
        relative: None,
        p_value: None,
        p_value_adjusted: None,
        verdict: Verdict::Inconclusive,
        effect_size: None,
        bayes: None,
        sequential: None,
        note: None,
    };
    let (c, t) = (SampleStats::from(control), SampleStats::from(treatment));
    let settings = settings(spec, metric);
    let result = match compare(&c, &t, &settings) {
        Ok(result) => result,
        Err(e) => {
            out.note = Some(format!("not enough data to compare: {e}"));
            return out;
        }
    };
    let a = result.absolute;
    out.absolute = Some(Interval {
        estimate: a.estimate,
        ci_low: a.ci_low,
        ci_high: a.ci_high,
    });
    out.p_value = Some(a.p_value);
    out.relative = result.relative.map(|r| Interval {
        estimate: r.estimate,
        ci_low: r.ci_low,
        ci_high: r.ci_high,
    });
    if out.relative.is_none() {
        out.note = Some("the baseline mean is 0, so the relative lift is undefined".to_string());
    }
    out.effect_size = result.effect_sizes.map(|e| EffectSize {
        cohens_d: e.cohens_d,
        hedges_g: e.hedges_g,
        cohens_h: e.cohens_h,
    });
    out.bayes = result.bayes.map(|b| BayesResult {
        chance_to_win: b.chance_to_win,
        risk_control: b.risk_control,
        risk_treatment: b.risk_treatment,
        ci_low: b.ci_low,
        ci_high: b.ci_high,
    });
    out.sequential = result.sequential.map(|s| SequentialResult {
        p_value: s.p_value,
        p_value_adjusted: None,
        ci_low: s.ci_low,
        ci_high: s.ci_high,
        relative: result.sequential_relative.map(|r| Interval {
            estimate: result.relative.map_or(0.0, |rel| rel.estimate),
            ci_low: r.ci_low,
            ci_high: r.ci_high,
        }),
    });
    out
}

/// Every metric's results, with p-values adjusted across all comparisons and verdicts set.
pub(crate) fn metrics(spec: &ExperimentSpec, index: &AggIndex<'_>) -> Vec<MetricResult> {
    let thompson = spec.allocation().thompson().is_some();
    let baseline = spec.baseline().key();
    let mut results: Vec<MetricResult> = spec
        .metrics()
        .iter()
        .map(|metric| {
            let arms = spec
                .arms()
                .iter()
                .map(|arm| {
                    let agg = index.overall(arm.key(), metric.key());
                    let ipw = thompson.then_some((agg.ipw_weight, agg.ipw_weighted_sum));
                    arm_stats(arm.key(), &agg.moments, ipw)
                })
                .collect();
            let control = index.overall(baseline, metric.key()).moments;
            let comparisons = spec
                .treatments()
                .map(|arm| {
                    let treatment = index.overall(arm.key(), metric.key()).moments;
                    comparison(spec, metric, baseline, arm.key(), &control, &treatment)
                })
                .collect();
            MetricResult {
                key: metric.key().to_string(),
                kind: metric.kind(),
                direction: metric.direction(),
                role: metric.role(),
                arms,
                comparisons,
            }
        })
        .collect();
    adjust(spec.analysis().correction(), &mut results);
    let use_sequential = spec.analysis().sequential();
    let alpha = spec.analysis().alpha();
    for (metric, result) in spec.metrics().iter().zip(results.iter_mut()) {
        for c in &mut result.comparisons {
            let p = if use_sequential {
                c.sequential.and_then(|s| s.p_value_adjusted)
            } else {
                c.p_value_adjusted
            };
            let estimate = c.absolute.map(|a| a.estimate);
            c.verdict = verdict(metric.direction(), estimate, p, alpha);
        }
    }
    results
}

/// better | worse when `p` < alpha, read through the direction; inconclusive otherwise.
pub(crate) fn verdict(
    direction: Direction,
    estimate: Option<f64>,
    p: Option<f64>,
    alpha: f64,
) -> Verdict {
    match (estimate, p) {
        (Some(estimate), Some(p)) if p < alpha && estimate != 0.0 => {
            let up = estimate > 0.0;
            if up == (direction == Direction::Increase) {
                Verdict::Better
            } else {
                Verdict::Worse
            }
        }
        _ => Verdict::Inconclusive,
    }
}

/// Applies `correction` across every comparison's p-value (and sequential p-value).
fn adjust(correction: Correction, results: &mut [MetricResult]) {
    let apply = |p: &[f64]| -> Option<Vec<f64>> {
        match correction {
            Correction::None => Some(p.to_vec()),
            Correction::Holm => holm(p).ok(),
            Correction::Bh => benjamini_hochberg(p).ok(),
        }
    };
    let fixed: Vec<f64> = results
        .iter()
        .flat_map(|m| m.comparisons.iter().filter_map(|c| c.p_value))
        .collect();
    if let Some(adjusted) = apply(&fixed) {
        let mut it = adjusted.into_iter();
        for c in results.iter_mut().flat_map(|m| m.comparisons.iter_mut()) {
            if c.p_value.is_some() {
                c.p_value_adjusted = it.next();
            }
        }
    }
    let sequential: Vec<f64> = results
        .iter()
        .flat_map(|m| {
            m.comparisons
                .iter()
                .filter_map(|c| c.sequential.map(|s| s.p_value))
        })
        .collect();
    if let Some(adjusted) = apply(&sequential) {
        let mut it = adjusted.into_iter();
        for c in results.iter_mut().flat_map(|m| m.comparisons.iter_mut()) {
            if let Some(s) = c.sequential.as_mut() {
                s.p_value_adjusted = it.next();
            }
        }
    }
}

/// The treatment most likely to beat the baseline on the primary metric (the first treatment
/// when no chance to win is known yet).
pub(crate) fn featured_treatment(
    spec: &ExperimentSpec,
    metrics: &[MetricResult],
) -> Option<String> {
    let primary = metrics.iter().find(|m| m.key == spec.primary().key())?;
    let best = primary
        .comparisons
        .iter()
        .filter_map(|c| c.bayes.map(|b| (c, b.chance_to_win)))
        .fold(
            None::<(&ComparisonResult, f64)>,
            |best, (c, p)| match best {
                Some((_, q)) if q >= p => best,
                _ => Some((c, p)),
            },
        );
    best.map(|(c, _)| c.arm.clone())
        .or_else(|| spec.treatments().next().map(|a| a.key().to_string()))
}

/// Every guardrail comparison with its status.
pub(crate) fn guardrails(spec: &ExperimentSpec, metrics: &[MetricResult]) -> Vec<GuardrailStatus> {
    spec.metrics()
        .iter()
        .zip(metrics)
        .filter(|(m, _)| m.role() == MetricRole::Guardrail)
        .flat_map(|(_, result)| {
            result.comparisons.iter().map(|c| GuardrailStatus {
                metric: result.key.clone(),
                arm: c.arm.clone(),
                verdict: c.verdict,
                relative: c.relative,
                ok: c.verdict != Verdict::Worse,
            })
        })
        .collect()
}

/// The first guardrail whose sequential interval lies entirely on the harmful side, when the
/// spec asks to pause on harm.
pub(crate) fn harm(spec: &ExperimentSpec, metrics: &[MetricResult]) -> Option<Harm> {
    if !spec.analysis().auto_pause_on_harm() {
        return None;
    }
    let alpha = spec.analysis().alpha();
    spec.metrics()
        .iter()
        .zip(metrics)
        .filter(|(m, _)| m.role() == MetricRole::Guardrail)
        .find_map(|(metric, result)| {
            result.comparisons.iter().find_map(|c| {
                let s = c.sequential?;
                let harmful = match metric.direction() {
                    Direction::Increase => s.ci_high < 0.0,
                    Direction::Decrease => s.ci_low > 0.0,
                };
                (harmful && s.p_value < alpha).then(|| Harm {
                    metric: result.key.clone(),
                    arm: c.arm.clone(),
                    p_value: s.p_value,
                    ci_low: s.ci_low,
                    ci_high: s.ci_high,
                })
            })
        })
}
