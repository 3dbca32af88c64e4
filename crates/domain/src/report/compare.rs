//! Per-metric results: arm summaries, treatment-versus-baseline comparisons, the one decision per comparison (corrected across the family, or a guardrail's harm test), verdicts, guardrails and harm.
//!
//! The estimates stratified by allocation period, and the bandit leaderboard read from them,
//! live in `compare/stratify.rs`.

use liftlab_stats::dist::t_ppf;
use liftlab_stats::sequential::rho;
use liftlab_stats::{
    adjusted_alpha, bayesian, benjamini_hochberg, compare, cuped, holm, prob_best, ratio_stats,
    sequential, sequential_with_rho, stratified_lift, stratified_means, stratified_ratio_lift,
    stratified_ratio_means, t_test, Alternative, CoMoments, CompareSettings, Moments, SampleStats,
    StratifiedMeans, Stratum,
};

use super::types::{
    ArmStats, BayesResult, ComparisonResult, CupedResult, Decision, DecisionMethod, DecisionTest,
    EffectSize, Evidence, GuardrailStatus, Harm, Interval, Leaderboard, LeaderboardEntry,
    MetricResult, SequentialResult, StratifiedResult, Verdict,
};
use super::AggIndex;
use crate::model::AggScope;
use crate::spec::{Correction, Direction, ExperimentSpec, Metric, MetricKind, MetricRole};

mod stratify;
pub(crate) use stratify::leaderboard;
use stratify::stratify_comparison;

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

/// The fewest units of each compared arm in one stratum of an estimate stratified by
/// allocation period: shorter periods are merged with the next (see
/// [`liftlab_stats::merge_short`]). Under a bandit a floored arm gets a handful of units per
/// period, and strata of a few binary outcomes give variance estimates that move with their
/// own means, so the stratified interval under-covers (93% with 10 in the bandit
/// calibration, about 95% with 25; see docs/CALIBRATION.md).
pub const MIN_UNITS_PER_STRATUM: u64 = 25;

/// The fewest units with a value per arm before a comparison gets a verdict.
pub const MIN_UNITS_PER_ARM: u64 = 30;

/// For a binary metric, the fewest successes and the fewest failures per arm before a
/// comparison gets a verdict.
pub const MIN_EACH_WAY: u64 = 5;

/// The settings of every comparison of `metric` (its diagnostics: Welch, Bayes, the
/// sequential interval on both scales).
fn settings(spec: &ExperimentSpec, metric: &Metric) -> CompareSettings {
    let analysis = spec.analysis();
    CompareSettings {
        alpha: analysis.alpha(),
        alternative: Alternative::TwoSided,
        sequential_tau: Some(analysis.sequential_tuning()),
        prior: None,
        binary: metric.kind() == MetricKind::Binary,
        inverse: metric.direction() == Direction::Decrease,
    }
}

/// The decision method of the spec's two-sided decisions: sequential unless the spec asks
/// for a fixed horizon.
pub(crate) fn method(spec: &ExperimentSpec) -> DecisionMethod {
    if spec.analysis().sequential() {
        DecisionMethod::Sequential
    } else {
        DecisionMethod::Fixed
    }
}

/// The decision method of a report's two-sided decisions: `stratified` when the allocation
/// changed during the epoch, otherwise the spec's ([`method`]).
pub(crate) fn report_method(spec: &ExperimentSpec, stratify: bool) -> DecisionMethod {
    if stratify {
        DecisionMethod::Stratified
    } else {
        method(spec)
    }
}

/// Whether the metric's values cannot be negative, so its relative lift cannot go below −100%.
fn non_negative(kind: MetricKind) -> bool {
    kind != MetricKind::Continuous
}

/// A relative lift's lower bound, never below −100% for a metric that cannot be negative.
pub(crate) fn floor_lift(kind: MetricKind, ci_low: f64) -> f64 {
    if non_negative(kind) {
        ci_low.max(-1.0)
    } else {
        ci_low
    }
}

/// The evidence of one comparison against the minimums.
pub(crate) fn evidence(kind: MetricKind, control: &Moments, treatment: &Moments) -> Evidence {
    let units = control.n().min(treatment.n());
    let each_way = (kind == MetricKind::Binary).then(|| {
        [control, treatment]
            .iter()
            .map(|m| {
                let successes = whole(m.sum().round()).unwrap_or(0).min(m.n());
                successes.min(m.n() - successes)
            })
            .min()
            .unwrap_or(0)
    });
    Evidence {
        units,
        min_units: MIN_UNITS_PER_ARM,
        outcomes_each_way: each_way,
        min_each_way: each_way.map(|_| MIN_EACH_WAY),
        enough: units >= MIN_UNITS_PER_ARM && each_way.map_or(true, |e| e >= MIN_EACH_WAY),
    }
}

/// The relative lift a decision tests: estimate, standard error, the t test's degrees of
/// freedom and the units behind it (both arms).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Lift {
    pub(crate) estimate: f64,
    pub(crate) se: f64,
    pub(crate) dof: f64,
    pub(crate) n_total: f64,
}

impl Lift {
    /// The two-sided p-value of "no lift" by `method` (ρ of the sequential test tuned at `alpha`).
    pub(crate) fn p_two_sided(&self, method: DecisionMethod, alpha: f64, tau: f64) -> Option<f64> {
        let alt = Alternative::TwoSided;
        match method {
            DecisionMethod::Sequential | DecisionMethod::Stratified => {
                sequential(self.estimate, self.se, self.n_total, alpha, tau, alt)
                    .ok()
                    .map(|s| s.p_value)
            }
            DecisionMethod::Fixed => t_test(self.estimate, self.se, self.dof, alpha, alt)
                .ok()
                .map(|t| t.p_value),
        }
    }

    /// The half-width of the two-sided interval at level `level_alpha`, by the same test as
    /// [`Lift::p_two_sided`] at `alpha`: for the sequential test ρ stays the one tuned at
    /// `alpha`, so the interval excludes 0 exactly when that p-value is below `level_alpha`.
    pub(crate) fn half_width(
        &self,
        method: DecisionMethod,
        alpha: f64,
        level_alpha: f64,
        tau: f64,
    ) -> f64 {
        match method {
            DecisionMethod::Sequential | DecisionMethod::Stratified => {
                let r = rho(alpha, tau, true);
                match sequential_with_rho(
                    self.estimate,
                    self.se,
                    self.n_total,
                    level_alpha,
                    r,
                    Alternative::TwoSided,
                ) {
                    Ok(s) => (s.ci_high - s.ci_low) / 2.0,
                    Err(_) => f64::NAN,
                }
            }
            DecisionMethod::Fixed => t_ppf(1.0 - level_alpha / 2.0, self.dof) * self.se,
        }
    }
}

/// The level of a decision interval: α·p/p_adjusted (see [`adjusted_alpha`]), or α/m (the
/// Bonferroni level) when p underflowed to 0 in a corrected family of m comparisons.
pub(crate) fn interval_alpha(
    correction: Correction,
    family: usize,
    alpha: f64,
    p: f64,
    p_adjusted: f64,
) -> f64 {
    if p > 0.0 || correction == Correction::None {
        adjusted_alpha(alpha, p, p_adjusted)
    } else {
        alpha / len_f64(family.max(1))
    }
}

/// Builds a two-sided decision from a lift, its p-value adjusted across the family, and the
/// level of its interval ([`interval_alpha`]); `None` when a number is not finite.
pub(crate) fn two_sided_decision(
    lift: &Lift,
    method: DecisionMethod,
    kind: MetricKind,
    alpha: f64,
    tau: f64,
    p_adjusted: f64,
    level_alpha: f64,
) -> Option<Decision> {
    let half = lift.half_width(method, alpha, level_alpha, tau);
    let (mut lo, mut hi) = (lift.estimate - half, lift.estimate + half);
    if !(lo.is_finite() && hi.is_finite() && p_adjusted.is_finite()) {
        return None;
    }
    // The interval and the p-value come from one test, so they agree up to rounding; at the
    // boundary the p-value decides and the interval's near end is set on 0's right side.
    let significant = p_adjusted < alpha;
    if significant && lo <= 0.0 && 0.0 <= hi {
        if lift.estimate > 0.0 {
            lo = f64::MIN_POSITIVE;
        } else {
            hi = -f64::MIN_POSITIVE;
        }
    } else if !significant && lo > 0.0 {
        lo = 0.0;
    } else if !significant && hi < 0.0 {
        hi = 0.0;
    }
    lo = floor_lift(kind, lo);
    Some(Decision {
        method,
        test: DecisionTest::TwoSided,
        estimate: lift.estimate,
        ci_low: lo,
        ci_high: hi,
        p_value: p_adjusted,
        alpha,
        interval_level: 1.0 - level_alpha,
        threshold: 0.0,
    })
}

/// A guardrail's harm test: one-sided, always-valid (a guardrail is watched all the time and
/// may pause the experiment; `method` is `sequential`, or `stratified` when the lift is), for a
/// relative lift beyond `max_harm` on the harmful side, at
/// the spec's alpha and not corrected for the other metrics. The interval's two ends are the
/// one-sided bounds at alpha (so a 1 − 2·alpha interval).
pub(crate) fn harm_decision(
    lift: &Lift,
    method: DecisionMethod,
    direction: Direction,
    kind: MetricKind,
    max_harm: f64,
    alpha: f64,
    tau: f64,
) -> Option<Decision> {
    // Harm is a fall of a metric that should rise, or a rise of one that should fall.
    let (shift, alternative, threshold) = match direction {
        Direction::Increase => (max_harm, Alternative::Less, -max_harm),
        Direction::Decrease => (-max_harm, Alternative::Greater, max_harm),
    };
    let p = sequential(
        lift.estimate + shift,
        lift.se,
        lift.n_total,
        alpha,
        tau,
        alternative,
    )
    .ok()?
    .p_value;
    let bound = |alternative| {
        sequential(
            lift.estimate,
            lift.se,
            lift.n_total,
            alpha,
            tau,
            alternative,
        )
        .ok()
    };
    let (mut lo, mut hi) = (
        bound(Alternative::Greater)?.ci_low,
        bound(Alternative::Less)?.ci_high,
    );
    if !(lo.is_finite() && hi.is_finite()) {
        return None;
    }
    let harmful = p < alpha;
    match direction {
        Direction::Increase if harmful && hi >= threshold => hi = beside(threshold, -1.0),
        Direction::Increase if !harmful && hi < threshold => hi = threshold,
        Direction::Decrease if harmful && lo <= threshold => lo = beside(threshold, 1.0),
        Direction::Decrease if !harmful && lo > threshold => lo = threshold,
        _ => {}
    }
    lo = floor_lift(kind, lo);
    Some(Decision {
        method,
        test: DecisionTest::Harm,
        estimate: lift.estimate,
        ci_low: lo,
        ci_high: hi,
        p_value: p,
        alpha,
        interval_level: 1.0 - 2.0 * alpha,
        threshold,
    })
}

/// A number a rounding step from `x` on the side of `sign`.
fn beside(x: f64, sign: f64) -> f64 {
    x + sign * f64::EPSILON * x.abs().max(f64::MIN_POSITIVE / f64::EPSILON)
}

/// gbstats' Gaussian model on a decision's lift: chance to win and risks, read through the
/// metric's direction.
fn bayes_of(lift: &Lift, settings: &CompareSettings) -> Option<BayesResult> {
    let b = bayesian(
        lift.estimate,
        lift.se,
        None,
        settings.alpha,
        settings.inverse,
    )
    .ok()?;
    Some(BayesResult {
        chance_to_win: b.chance_to_win,
        risk_control: b.risk_control,
        risk_treatment: b.risk_treatment,
        ci_low: b.ci_low,
        ci_high: b.ci_high,
    })
}

/// The verdict a decision gives, read through the metric's direction.
pub(crate) fn verdict_of(direction: Direction, decision: Option<&Decision>) -> Verdict {
    let Some(d) = decision else {
        return Verdict::Inconclusive;
    };
    match d.test {
        DecisionTest::Harm if d.p_value < d.alpha => Verdict::Worse,
        DecisionTest::Harm => Verdict::Inconclusive,
        DecisionTest::TwoSided if d.ci_low > 0.0 || d.ci_high < 0.0 => {
            if (d.ci_low > 0.0) == (direction == Direction::Increase) {
                Verdict::Better
            } else {
                Verdict::Worse
            }
        }
        DecisionTest::TwoSided => Verdict::Inconclusive,
    }
}

/// What one arm measured on one metric: per-unit moments, and for a paired metric (a
/// covariate or a ratio) the (x, y) co-moments.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Measure {
    /// Per-unit values x (a ratio metric's numerator).
    pub(crate) moments: Moments,
    /// The (x, y) co-moments, for a metric with a covariate or a ratio metric.
    pub(crate) paired: Option<CoMoments>,
}

impl Measure {
    /// The arm's per-unit summary the comparisons run on: the ratio Σx/Σy with its
    /// delta-method per-unit variance for a ratio metric, the plain moments otherwise.
    fn stats(&self, metric: &Metric) -> Result<SampleStats, liftlab_stats::StatsError> {
        match (metric.ratio(), &self.paired) {
            (Some(_), Some(co)) => ratio_stats(co),
            (Some(_), None) => Err(liftlab_stats::StatsError::TooFewObservations {
                what: "ratio metric",
                needed: 2.0,
                got: 0.0,
            }),
            (None, _) => Ok(SampleStats::from(&self.moments)),
        }
    }
}

/// Reads one arm's measure of `metric` from the epoch's aggregates.
pub(crate) fn measure(index: &AggIndex<'_>, arm: &str, metric: &Metric) -> Measure {
    let moments = index.overall(arm, metric.key()).moments;
    let paired = (metric.ratio().is_some() || metric.covariate().is_some())
        .then(|| index.paired(arm, metric.key()));
    Measure { moments, paired }
}

/// Compares `treatment` with `control` on one metric: the diagnostics, the evidence and the
/// lift a decision will test; never fails (a note says what is missing). The decision and
/// verdict are set by [`metrics`] once the family's p-values are adjusted.
///
/// A ratio metric compares Σx/Σy per arm by the delta method with covariance; a metric with a
/// covariate tests its CUPED-adjusted relative lift (one pooled θ), while `absolute` and
/// `relative` stay the unadjusted diagnostics.
pub(crate) fn comparison(
    spec: &ExperimentSpec,
    metric: &Metric,
    baseline: &str,
    arm: &str,
    control: &Measure,
    treatment: &Measure,
) -> (ComparisonResult, Option<Lift>) {
    let evidence = evidence(metric.kind(), &control.moments, &treatment.moments);
    let mut out = ComparisonResult {
        arm: arm.to_string(),
        baseline: baseline.to_string(),
        absolute: None,
        relative: None,
        p_value: None,
        p_value_adjusted: None,
        verdict: if evidence.enough {
            Verdict::Inconclusive
        } else {
            Verdict::Collecting
        },
        decision: None,
        evidence,
        effect_size: None,
        bayes: None,
        sequential: None,
        cuped: None,
        stratified: None,
        note: None,
    };
    let (c, t) = match (control.stats(metric), treatment.stats(metric)) {
        (Ok(c), Ok(t)) => (c, t),
        (Err(e), _) | (_, Err(e)) => {
            out.note = Some(format!("not enough data to compare: {e}"));
            return (out, None);
        }
    };
    let settings = settings(spec, metric);
    let result = match compare(&c, &t, &settings) {
        Ok(result) => result,
        Err(e) => {
            out.note = Some(format!("not enough data to compare: {e}"));
            return (out, None);
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
        ci_low: floor_lift(metric.kind(), r.ci_low),
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
    let mut lift = result.relative.map(|r| Lift {
        estimate: r.estimate,
        se: r.se,
        dof: r.dof,
        n_total: c.n + t.n,
    });
    if let (Some(_), Some(cc), Some(tc)) = (metric.covariate(), control.paired, treatment.paired) {
        let adjusted = cuped(&cc, &tc).and_then(|cu| {
            let r = cu.relative(settings.alpha, Alternative::TwoSided)?;
            Ok((cu.theta(), r))
        });
        match adjusted {
            Ok((theta, r)) => {
                out.cuped = lift.map(|unadjusted| CupedResult {
                    theta,
                    estimate: r.estimate,
                    se: r.se,
                    se_unadjusted: unadjusted.se,
                    variance_reduction: 1.0 - (r.se / unadjusted.se).powi(2),
                });
                lift = Some(Lift {
                    estimate: r.estimate,
                    se: r.se,
                    dof: r.dof,
                    n_total: c.n + t.n,
                });
            }
            Err(e) => out.note = Some(format!("no CUPED adjustment: {e}")),
        }
    }
    // Chance to win reads the same lift as the decision (CUPED-adjusted when there is a covariate).
    out.bayes = lift
        .filter(|_| evidence.enough)
        .and_then(|l| bayes_of(&l, &settings));
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
    (out, lift.filter(|_| evidence.enough))
}

/// Every metric's results: diagnostics with p-values adjusted across the family, each
/// comparison's decision, and the verdict that follows from it.
///
/// The family is every treatment-versus-baseline comparison of the primary and secondary
/// metrics with enough evidence; the spec's correction adjusts their decision p-values, and
/// each decision interval is widened to the level that matches its adjusted p-value.
/// Guardrails are harm tests outside the family.
///
/// With `stratify` (the allocation changed during the epoch: a bandit, or ramped weights),
/// every lift is the one stratified by allocation period ([`stratify_comparison`]) and its
/// decision's method is `stratified`: the always-valid confidence sequence on that lift.
pub(crate) fn metrics(
    spec: &ExperimentSpec,
    index: &AggIndex<'_>,
    stratify: bool,
) -> Vec<MetricResult> {
    let thompson = spec.allocation().thompson().is_some();
    let baseline = spec.baseline().key();
    let analysis = spec.analysis();
    let (alpha, tau) = (analysis.alpha(), analysis.sequential_tuning());
    let mut lifts: Vec<Vec<Option<(Lift, DecisionMethod)>>> = Vec::new();
    let mut results: Vec<MetricResult> = spec
        .metrics()
        .iter()
        .map(|metric| {
            let measures: Vec<Measure> = spec
                .arms()
                .iter()
                .map(|arm| measure(index, arm.key(), metric))
                .collect();
            let arms = spec
                .arms()
                .iter()
                .zip(&measures)
                .map(|(arm, measure)| {
                    let agg = index.overall(arm.key(), metric.key());
                    let ipw = thompson.then_some((agg.ipw_weight, agg.ipw_weighted_sum));
                    let mut stats = arm_stats(arm.key(), &measure.moments, ipw);
                    if metric.ratio().is_some() {
                        // A ratio metric's arm mean is Σx/Σy, its sd the delta method's.
                        let ratio = measure.stats(metric).ok();
                        stats.mean = ratio.map_or(0.0, |r| r.mean);
                        stats.sd = ratio.map_or(0.0, |r| r.sd());
                        stats.ipw_mean = None;
                    }
                    stats
                })
                .collect();
            let control = &measures[spec.baseline_index()];
            let (comparisons, metric_lifts): (Vec<_>, Vec<_>) = spec
                .arms()
                .iter()
                .zip(&measures)
                .filter(|(arm, _)| !arm.is_baseline())
                .map(|(arm, treatment)| {
                    let (mut out, lift) =
                        comparison(spec, metric, baseline, arm.key(), control, treatment);
                    let (lift, method) = if stratify {
                        stratify_comparison(spec, index, metric, &mut out, lift)
                    } else {
                        (lift, method(spec))
                    };
                    (out, lift.map(|l| (l, method)))
                })
                .unzip();
            lifts.push(metric_lifts);
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
    adjust_diagnostics(analysis.correction(), &mut results);

    // The family's decision p-values, adjusted together.
    let mut family: Vec<(usize, usize, f64)> = Vec::new();
    for (i, metric) in spec.metrics().iter().enumerate() {
        if metric.role() == MetricRole::Guardrail {
            continue;
        }
        for (j, lift) in lifts[i].iter().enumerate() {
            if let Some(p) = lift.and_then(|(l, method)| l.p_two_sided(method, alpha, tau)) {
                family.push((i, j, p));
            }
        }
    }
    let raw: Vec<f64> = family.iter().map(|f| f.2).collect();
    let adjusted = correct(analysis.correction(), &raw).unwrap_or(raw);
    for (&(i, j, p), p_adj) in family.iter().zip(adjusted) {
        let metric = &spec.metrics()[i];
        let level = interval_alpha(analysis.correction(), family.len(), alpha, p, p_adj);
        if let Some((lift, method)) = lifts[i][j] {
            results[i].comparisons[j].decision =
                two_sided_decision(&lift, method, metric.kind(), alpha, tau, p_adj, level);
        }
    }
    for (i, metric) in spec.metrics().iter().enumerate() {
        for (j, c) in results[i].comparisons.iter_mut().enumerate() {
            if metric.role() == MetricRole::Guardrail {
                c.decision = lifts[i][j].and_then(|(lift, method)| {
                    let method = match method {
                        DecisionMethod::Stratified => DecisionMethod::Stratified,
                        DecisionMethod::Sequential | DecisionMethod::Fixed => {
                            DecisionMethod::Sequential
                        }
                    };
                    harm_decision(
                        &lift,
                        method,
                        metric.direction(),
                        metric.kind(),
                        metric.max_harm(),
                        alpha,
                        tau,
                    )
                });
            }
            if c.verdict != Verdict::Collecting {
                c.verdict = verdict_of(metric.direction(), c.decision.as_ref());
            }
        }
    }
    results
}

/// The spec's correction applied to `p`.
fn correct(correction: Correction, p: &[f64]) -> Option<Vec<f64>> {
    match correction {
        Correction::None => Some(p.to_vec()),
        Correction::Holm => holm(p).ok(),
        Correction::Bh => benjamini_hochberg(p).ok(),
    }
}

/// Applies `correction` across every comparison's Welch p-value and sequential p-value (the
/// diagnostics shown beside the decision).
fn adjust_diagnostics(correction: Correction, results: &mut [MetricResult]) {
    let fixed: Vec<f64> = results
        .iter()
        .flat_map(|m| m.comparisons.iter().filter_map(|c| c.p_value))
        .collect();
    if let Some(adjusted) = correct(correction, &fixed) {
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
    if let Some(adjusted) = correct(correction, &sequential) {
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

/// Every guardrail comparison with its harm test's status.
pub(crate) fn guardrails(spec: &ExperimentSpec, metrics: &[MetricResult]) -> Vec<GuardrailStatus> {
    spec.metrics()
        .iter()
        .zip(metrics)
        .filter(|(m, _)| m.role() == MetricRole::Guardrail)
        .flat_map(|(metric, result)| {
            result.comparisons.iter().map(|c| GuardrailStatus {
                metric: result.key.clone(),
                arm: c.arm.clone(),
                verdict: c.verdict,
                decision: c.decision,
                max_harm: metric.max_harm(),
                ok: c.verdict != Verdict::Worse,
            })
        })
        .collect()
}

/// The first guardrail whose harm test finds it significantly worse: what the page warns
/// about and what `auto_pause_on_harm` acts on.
pub(crate) fn harm(guardrails: &[GuardrailStatus]) -> Option<Harm> {
    guardrails.iter().find_map(|g| {
        let d = g.decision.filter(|_| g.verdict == Verdict::Worse)?;
        Some(Harm {
            metric: g.metric.clone(),
            arm: g.arm.clone(),
            p_value: d.p_value,
            ci_low: d.ci_low,
            ci_high: d.ci_high,
        })
    })
}
