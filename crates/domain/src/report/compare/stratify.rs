//! Estimates stratified by allocation period (batched-bandit inference): the strata of a metric, the stratified comparison, and the bandit leaderboard read from the same stratified arm means.

use super::*;

/// The allocation periods `metric` has per-period aggregates for, in any arm, in order.
pub(super) fn periods_of(spec: &ExperimentSpec, index: &AggIndex<'_>, metric: &str) -> Vec<u64> {
    let mut periods: Vec<u64> = spec
        .arms()
        .iter()
        .flat_map(|a| index.scoped(a.key(), metric))
        .filter_map(|(scope, _)| match scope {
            AggScope::Period(p) => Some(*p),
            _ => None,
        })
        .collect();
    periods.sort_unstable();
    periods.dedup();
    periods
}

/// Per period of `metric`: its units over all arms and the moments of each arm in `arms`.
pub(super) fn strata(
    spec: &ExperimentSpec,
    index: &AggIndex<'_>,
    metric: &str,
    arms: &[&str],
) -> Vec<Stratum> {
    periods_of(spec, index, metric)
        .into_iter()
        .map(|p| {
            let scope = AggScope::Period(p);
            let units = spec
                .arms()
                .iter()
                .map(|a| index.get(a.key(), metric, &scope).moments.n())
                .sum();
            Stratum {
                units,
                arms: arms
                    .iter()
                    .map(|a| index.get(a, metric, &scope).moments)
                    .collect(),
            }
        })
        .collect()
}

/// Per period of a ratio metric: its units over all arms and the (x, y) co-moments of each
/// arm in `arms`.
pub(super) fn ratio_strata(
    spec: &ExperimentSpec,
    index: &AggIndex<'_>,
    metric: &str,
    arms: &[&str],
) -> Vec<Stratum<CoMoments>> {
    periods_of(spec, index, metric)
        .into_iter()
        .map(|p| Stratum {
            units: spec
                .arms()
                .iter()
                .map(|a| index.get(a.key(), metric, &AggScope::Period(p)).moments.n())
                .sum(),
            arms: arms
                .iter()
                .map(|a| index.paired_in_period(a, metric, p))
                .collect(),
        })
        .collect()
}

/// Each arm's stratified mean of `metric` (its ratio Σx/Σy for a ratio metric).
pub(super) fn stratified_arm_means(
    spec: &ExperimentSpec,
    index: &AggIndex<'_>,
    metric: &Metric,
    arms: &[&str],
) -> Result<StratifiedMeans, liftlab_stats::StatsError> {
    if metric.ratio().is_some() {
        let strata = ratio_strata(spec, index, metric.key(), arms);
        stratified_ratio_means(&strata, MIN_UNITS_PER_STRATUM)
    } else {
        let strata = strata(spec, index, metric.key(), arms);
        stratified_means(&strata, MIN_UNITS_PER_STRATUM)
    }
}

/// The comparison of `arm` with `baseline` on `metric` stratified by allocation period (short
/// periods merged until both arms have [`MIN_UNITS_PER_STRATUM`] units); a ratio metric by
/// the combined ratio estimator.
pub(super) fn stratified(
    spec: &ExperimentSpec,
    index: &AggIndex<'_>,
    metric: &Metric,
    baseline: &str,
    arm: &str,
) -> Result<StratifiedResult, liftlab_stats::StatsError> {
    let s = if metric.ratio().is_some() {
        let periods: Vec<(u64, CoMoments, CoMoments)> =
            ratio_strata(spec, index, metric.key(), &[baseline, arm])
                .into_iter()
                .map(|s| (s.units, s.arms[0], s.arms[1]))
                .collect();
        stratified_ratio_lift(&periods, MIN_UNITS_PER_STRATUM)?
    } else {
        let periods: Vec<(u64, Moments, Moments)> =
            strata(spec, index, metric.key(), &[baseline, arm])
                .into_iter()
                .map(|s| (s.units, s.arms[0], s.arms[1]))
                .collect();
        stratified_lift(&periods, MIN_UNITS_PER_STRATUM)?
    };
    Ok(StratifiedResult {
        baseline_mean: s.baseline_mean,
        treatment_mean: s.treatment_mean,
        absolute: s.absolute,
        absolute_se: s.absolute_se,
        relative: s.relative,
        relative_se: s.relative_se,
        strata: s.strata,
    })
}

/// Replaces a comparison's lift by the one stratified by allocation period (see
/// [`StratifiedResult`]); chance to win follows it. A ratio metric is stratified by the
/// combined ratio estimator; a metric with a covariate is stratified without the CUPED
/// adjustment. When the aggregates have no periods (a store written before
/// they were kept), the pooled lift stays, with a note.
pub(super) fn stratify_comparison(
    spec: &ExperimentSpec,
    index: &AggIndex<'_>,
    metric: &Metric,
    out: &mut ComparisonResult,
    lift: Option<Lift>,
) -> (Option<Lift>, DecisionMethod) {
    let pooled = method(spec);
    let Some(pooled_lift) = lift else {
        return (None, pooled);
    };
    match stratified(spec, index, metric, &out.baseline, &out.arm) {
        Ok(s) => {
            let lift = Lift {
                estimate: s.relative,
                se: s.relative_se,
                dof: (pooled_lift.n_total - 2.0).max(1.0),
                n_total: pooled_lift.n_total,
            };
            out.bayes = bayes_of(&lift, &settings(spec, metric));
            if out.cuped.take().is_some() {
                out.note = Some(
                    "the decision is stratified by allocation period without the CUPED adjustment"
                        .to_string(),
                );
            }
            out.stratified = Some(s);
            (Some(lift), DecisionMethod::Stratified)
        }
        Err(e) => {
            out.note = Some(format!(
                "pooled means: no estimate stratified by allocation period ({e})"
            ));
            (lift, pooled)
        }
    }
}

/// The bandit leaderboard of the primary metric: each arm's mean stratified by allocation
/// period, its chance of being best (normal posteriors, flat prior) and its expected loss
/// against the leading other arm; `None` before every arm has [`MIN_UNITS_PER_STRATUM`] units
/// in some stratum.
pub(crate) fn leaderboard(spec: &ExperimentSpec, index: &AggIndex<'_>) -> Option<Leaderboard> {
    let metric = spec.primary();
    let keys: Vec<&str> = spec.arms().iter().map(|a| a.key()).collect();
    let means = stratified_arm_means(spec, index, metric, &keys).ok()?;
    // Read through the direction: "best" is the highest for increase, the lowest for decrease.
    let sign = match metric.direction() {
        Direction::Increase => 1.0,
        Direction::Decrease => -1.0,
    };
    let posteriors: Vec<(f64, f64)> = means
        .means
        .iter()
        .zip(&means.variances)
        .map(|(m, v)| (sign * m, v.sqrt()))
        .collect();
    if posteriors.iter().any(|(_, sd)| sd.is_nan() || *sd <= 0.0) {
        return None;
    }
    let best = prob_best(&posteriors).ok()?;
    let mut arms: Vec<LeaderboardEntry> = keys
        .iter()
        .enumerate()
        .map(|(i, arm)| {
            let (m, sd) = posteriors[i];
            let leader = posteriors
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
                .map(|(_, p)| *p);
            let expected_loss = leader.map_or(0.0, |(lm, lsd)| {
                let d = lm - m;
                let s = (sd * sd + lsd * lsd).sqrt();
                let z = d / s;
                d * liftlab_stats::dist::norm_cdf(z) + s * liftlab_stats::dist::norm_pdf(z)
            });
            LeaderboardEntry {
                arm: (*arm).to_string(),
                mean: means.means[i],
                se: sd,
                prob_best: best[i],
                expected_loss,
            }
        })
        .collect();
    arms.sort_by(|a, b| b.prob_best.total_cmp(&a.prob_best));
    Some(Leaderboard {
        metric: metric.key().to_string(),
        strata: means.strata,
        arms,
    })
}
