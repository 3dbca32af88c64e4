//! ROI in money and time (cost per case, monthly savings, hours saved, automation coverage) and quality-adjusted productivity.

use std::collections::BTreeMap;

use liftlab_stats::dist::t_ppf;

use super::compare::count_f64;
use super::types::{
    ArmProductivity, ArmSavings, ArmStats, Interval, MetricResult, Productivity, RoiResult,
    SavingsBasis,
};
use super::{AggIndex, ArmTally};
use crate::model::HandledBy;
use crate::spec::{Direction, ExperimentSpec, MetricKind};

/// The t interval of one arm's mean at level 1 − alpha; needs n ≥ 2.
fn mean_interval(stats: &ArmStats, alpha: f64) -> Option<Interval> {
    if stats.n < 2 {
        return None;
    }
    let n = count_f64(stats.n);
    let half = t_ppf(1.0 - alpha / 2.0, n - 1.0) * stats.sd / n.sqrt();
    half.is_finite().then_some(Interval {
        estimate: stats.mean,
        ci_low: stats.mean - half,
        ci_high: stats.mean + half,
    })
}

/// The per-case saving of `arm` on `metric` (baseline minus treatment, in the metric's unit)
/// from the metric's decision: −(relative lift) × the baseline mean (stratified by allocation
/// period when the decision is), so the saving's interval
/// excludes 0 exactly when the metric's verdict is better or worse.
fn saving_per_case(metrics: &[MetricResult], metric: Option<&str>, arm: &str) -> Option<Interval> {
    let result = metrics.iter().find(|m| Some(m.key.as_str()) == metric)?;
    let comparison = result.comparisons.iter().find(|c| c.arm == arm)?;
    let d = comparison.decision?;
    // The decision's own baseline: the stratified mean when the lift is stratified by period.
    let base = match comparison.stratified {
        Some(s) => s.baseline_mean,
        None => {
            result
                .arms
                .iter()
                .find(|a| a.arm == comparison.baseline)?
                .mean
        }
    };
    Some(Interval {
        estimate: -d.estimate * base,
        ci_low: -d.ci_high * base,
        ci_high: -d.ci_low * base,
    })
}

/// The ROI section, when the spec has ROI settings.
pub(crate) fn roi(
    spec: &ExperimentSpec,
    metrics: &[MetricResult],
    tallies: &[ArmTally],
    featured: Option<&str>,
) -> Option<RoiResult> {
    let settings = spec.roi()?;
    let alpha = spec.analysis().alpha();
    let volume = settings.volume_per_month();
    let per_hour = settings.duration_unit().per_hour();
    let cost_metric = settings.cost_metric();
    let duration_metric = settings.duration_metric();
    let fixed = settings.fixed_monthly_cost();
    let cost = metrics.iter().find(|m| Some(m.key.as_str()) == cost_metric);
    let mut cost_per_case = BTreeMap::new();
    let mut cost_per_case_ci = BTreeMap::new();
    for stats in cost.iter().flat_map(|m| m.arms.iter()).filter(|s| s.n > 0) {
        cost_per_case.insert(stats.arm.clone(), stats.mean);
        if let Some(ci) = mean_interval(stats, alpha) {
            cost_per_case_ci.insert(stats.arm.clone(), ci);
        }
    }
    let labour_rate = settings.human_cost_per_hour();
    let basis = if cost.is_some() {
        Some(SavingsBasis::CostMetric)
    } else if duration_metric.is_some() && labour_rate > 0.0 {
        Some(SavingsBasis::HumanTime)
    } else {
        None
    };
    // Per case: the money saved (on the basis above) and the hours saved.
    let per_case = |arm: &str| -> (Option<Interval>, Option<Interval>) {
        let hours =
            saving_per_case(metrics, duration_metric, arm).map(|h| scale(h, 1.0 / per_hour));
        let money = match basis {
            Some(SavingsBasis::CostMetric) => saving_per_case(metrics, cost_metric, arm),
            Some(SavingsBasis::HumanTime) => hours.map(|h| scale(h, labour_rate)),
            None => None,
        };
        (money, hours)
    };
    let by_arm: Vec<ArmSavings> = spec
        .treatments()
        .map(|arm| {
            let (money, hours) = per_case(arm.key());
            ArmSavings {
                arm: arm.key().to_string(),
                monthly_savings: money.map(|m| scale(m, volume)),
                hours_saved_per_month: hours.map(|h| scale(h, volume)),
            }
        })
        .collect();
    let chosen = featured.and_then(|f| by_arm.iter().find(|s| s.arm == f));
    let hours = chosen.and_then(|s| s.hours_saved_per_month);
    let gross = chosen.and_then(|s| s.monthly_savings);
    let money_per_case = chosen.and_then(|s| per_case(&s.arm).0);
    Some(RoiResult {
        currency: settings.currency().to_string(),
        cost_metric: cost_metric.map(str::to_string),
        duration_metric: duration_metric.map(str::to_string),
        volume_per_month: volume,
        human_cost_per_hour: labour_rate,
        cost_per_case,
        cost_per_case_ci,
        arm: chosen.map(|s| s.arm.clone()),
        savings_basis: basis,
        monthly_savings: gross,
        fixed_monthly_cost: fixed,
        net_monthly_savings: gross.map(|g| Interval {
            estimate: g.estimate - fixed,
            ci_low: g.ci_low - fixed,
            ci_high: g.ci_high - fixed,
        }),
        break_even_volume: money_per_case
            .filter(|m| m.estimate > 0.0)
            .map(|m| fixed / m.estimate),
        hours_saved_per_month: hours,
        labour_savings_per_month: hours
            .filter(|_| labour_rate > 0.0)
            .map(|h| scale(h, labour_rate)),
        automation_coverage: automation_coverage(tallies),
        by_arm,
    })
}

fn scale(i: Interval, factor: f64) -> Interval {
    Interval {
        estimate: i.estimate * factor,
        ci_low: i.ci_low * factor,
        ci_high: i.ci_high * factor,
    }
}

/// Share of outcomes handled by AI per arm, among outcomes that said who handled them.
fn automation_coverage(tallies: &[ArmTally]) -> BTreeMap<String, f64> {
    tallies
        .iter()
        .filter_map(|t| {
            let said: u64 = t.handled_by.values().sum();
            let ai = t.handled_by.get(&HandledBy::Ai).copied().unwrap_or(0);
            (said > 0).then(|| (t.arm.clone(), count_f64(ai) / count_f64(said)))
        })
        .collect()
}

/// Completed cases per arm weighted by the share that met quality: the favourable rate of
/// every binary metric (1 − rate for metrics where smaller is better), multiplied together.
pub(crate) fn productivity(
    spec: &ExperimentSpec,
    index: &AggIndex<'_>,
    tallies: &[ArmTally],
) -> Productivity {
    let quality: Vec<_> = spec
        .metrics()
        .iter()
        .filter(|m| m.kind() == MetricKind::Binary)
        .collect();
    let duration = spec.roi().and_then(|r| {
        r.duration_metric()
            .map(|m| (m, r.duration_unit().per_hour()))
    });
    let arms = spec
        .arms()
        .iter()
        .map(|arm| {
            let completed = tallies
                .iter()
                .filter(|t| t.arm == arm.key())
                .map(|t| t.units)
                .sum();
            let share = quality.iter().try_fold(1.0, |share, m| {
                let moments = index.overall(arm.key(), m.key()).moments;
                let rate = moments.mean();
                let favourable = match m.direction() {
                    Direction::Increase => rate,
                    Direction::Decrease => 1.0 - rate,
                };
                (moments.n() > 0).then_some(share * favourable)
            });
            let hours = duration.and_then(|(metric, per_hour)| {
                let moments = index.overall(arm.key(), metric).moments;
                let hours = moments.mean() / per_hour;
                (moments.n() > 0 && hours > 0.0).then_some(hours)
            });
            ArmProductivity {
                arm: arm.key().to_string(),
                completed,
                quality_share: share,
                quality_adjusted_cases: share.map(|s| s * count_f64(completed)),
                quality_adjusted_per_hour: share.zip(hours).map(|(s, h)| s / h),
            }
        })
        .collect();
    Productivity {
        quality_metrics: quality.iter().map(|m| m.key().to_string()).collect(),
        arms,
    }
}
