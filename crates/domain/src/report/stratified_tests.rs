//! Tests of the decisions stratified by allocation period: ramps and bandits use the period-stratified lift, pooled means never decide.

use liftlab_stats::{stratified_lift, Moments};
use serde_json::json;

use super::tests::{parse, running};
use super::*;

/// Agreement expected between two computations of the same formula (rounding only).
const SAME: f64 = 1e-9;

/// A metric's aggregate of n values with the given mean and sd, under `scope`.
fn agg(arm: &str, scope: AggScope, n: u64, mean: f64, sd: f64) -> (AggKey, MetricAggregate) {
    let nf = n as f64;
    let sum = mean * nf;
    let sum_sq = sd * sd * (nf - 1.0) + sum * mean;
    (
        AggKey {
            epoch: 0,
            arm: arm.to_string(),
            metric: "minutes".to_string(),
            scope,
        },
        MetricAggregate {
            moments: Moments::from_sums(n, sum, sum_sq),
            ipw_weight: 0.0,
            ipw_weighted_sum: 0.0,
        },
    )
}

/// A ramp under a trend: period 0 at 90/10, period 1 at 50/50, every value 10 minutes higher
/// in period 1. (arm, period, n, mean) per cell; sd 2 everywhere.
const RAMP: [(&str, u64, u64, f64); 4] = [
    ("base", 0, 900, 10.0),
    ("ai", 0, 100, 9.0),
    ("base", 1, 500, 20.0),
    ("ai", 1, 500, 19.0),
];

/// The aggregates (Overall and Period) and assignment counts of `cells`.
fn data(cells: &[(&str, u64, u64, f64)]) -> (Vec<(AggKey, MetricAggregate)>, Vec<PeriodCount>) {
    let mut aggregates = Vec::new();
    let mut overall: std::collections::BTreeMap<&str, MetricAggregate> = Default::default();
    for &(arm, period, n, mean) in cells {
        let cell = agg(arm, AggScope::Period(period), n, mean, 2.0);
        let entry = overall.entry(arm).or_default();
        entry.moments.merge(&cell.1.moments);
        aggregates.push(cell);
    }
    for (arm, a) in overall {
        aggregates.push((
            AggKey {
                epoch: 0,
                arm: arm.to_string(),
                metric: "minutes".to_string(),
                scope: AggScope::Overall,
            },
            a,
        ));
    }
    let assignments = cells
        .iter()
        .map(|&(arm, period, n, _)| PeriodCount {
            period,
            arm: arm.to_string(),
            count: n,
        })
        .collect();
    (aggregates, assignments)
}

fn periods(weights: &[(u64, f64)]) -> Vec<AllocationPeriod> {
    weights
        .iter()
        .map(|&(period, ai)| AllocationPeriod {
            experiment: "ramp".to_string(),
            period,
            weights: vec![("base".to_string(), 1.0 - ai), ("ai".to_string(), ai)],
            opened_at: 0,
            rewards_seen: 0,
        })
        .collect()
}

fn report(
    spec: serde_json::Value,
    cells: &[(&str, u64, u64, f64)],
    weights: &[(u64, f64)],
) -> Report {
    let version = running(parse(spec));
    let (aggregates, assignments) = data(cells);
    let periods = periods(weights);
    build(&ReportInput {
        version: &version,
        epoch: 0,
        aggregates: &aggregates,
        tallies: &[],
        assignments: &assignments,
        periods: &periods,
        epochs: &[],
        drift: None,
        pause_reason: None,
    })
}

fn fixed_spec() -> serde_json::Value {
    json!({
        "key": "ramp",
        "arms": [{"key": "base", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"base": 0.5, "ai": 0.5}},
        "metrics": [{"key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary"}]
    })
}

/// Under a ramp with a trend, pooled means say the AI arm is much slower (Simpson's paradox);
/// the stratified decision says it is 1 minute faster in both periods, and says why.
#[test]
fn a_ramp_is_decided_on_the_lift_stratified_by_period() {
    let r = report(fixed_spec(), &RAMP, &[(0, 0.1), (1, 0.5)]);
    assert!(r.stratified);
    assert_eq!(r.analysis.method, DecisionMethod::Stratified);
    let c = &r.metrics[0].comparisons[0];
    let pooled = c.relative.expect("a pooled diagnostic").estimate;
    assert!(
        pooled > 0.2,
        "pooled means are confounded by the trend: {pooled}"
    );
    let d = c.decision.expect("a decision");
    assert_eq!(d.method, DecisionMethod::Stratified);
    // w = (1000, 1000)/2000: μ_B = 15, μ_T = 14.
    assert!((d.estimate - (-1.0 / 15.0)).abs() < SAME, "{}", d.estimate);
    let s = c.stratified.expect("the stratified estimate");
    let want = stratified_lift(
        &[
            (
                1000,
                Moments::from_sums(900, 9000.0, 4.0 * 899.0 + 90_000.0),
                { Moments::from_sums(100, 900.0, 4.0 * 99.0 + 8100.0) },
            ),
            (
                1000,
                Moments::from_sums(500, 10_000.0, 4.0 * 499.0 + 200_000.0),
                { Moments::from_sums(500, 9500.0, 4.0 * 499.0 + 180_500.0) },
            ),
        ],
        2,
    )
    .expect("a lift");
    assert!((s.relative_se - want.relative_se).abs() < SAME);
    assert_eq!(c.verdict, Verdict::Better);
    assert!(r
        .warnings
        .iter()
        .any(|w| w.kind == WarningKind::Ramped && w.message.starts_with("Ramped: ")));
    // SRM per period: each period's counts match its own weights.
    assert_eq!(r.allocation.len(), 2);
    assert!(r.allocation.iter().all(|a| a.srm.is_some_and(|s| s.ok)));
}

/// One period only: nothing changed, the spec's method decides on pooled means.
#[test]
fn a_single_period_is_not_stratified() {
    let cells = [("base", 0, 500, 10.0), ("ai", 0, 500, 9.0)];
    let r = report(fixed_spec(), &cells, &[(0, 0.5)]);
    assert!(!r.stratified);
    assert_eq!(r.analysis.method, DecisionMethod::Sequential);
    let c = &r.metrics[0].comparisons[0];
    assert!(c.stratified.is_none());
    assert_eq!(
        c.decision.expect("a decision").method,
        DecisionMethod::Sequential
    );
    assert!(r.warnings.iter().all(|w| w.kind != WarningKind::Ramped));
}

/// A period whose counts do not match its weights is flagged on its own.
#[test]
fn srm_is_checked_within_each_period() {
    let cells = [
        ("base", 0, 500, 10.0),
        ("ai", 0, 500, 9.0),
        ("base", 1, 700, 10.0),
        ("ai", 1, 300, 9.0),
    ];
    let r = report(fixed_spec(), &cells, &[(0, 0.5), (1, 0.5)]);
    let srm: Vec<bool> = r
        .allocation
        .iter()
        .map(|a| a.srm.expect("counts").ok)
        .collect();
    assert_eq!(srm, vec![true, false]);
    assert!(r
        .warnings
        .iter()
        .any(|w| w.kind == WarningKind::PeriodSrm && w.message.contains("allocation period 1")));
}

/// A bandit always decides on the stratified lift and ranks its arms on stratified means.
#[test]
fn a_bandit_has_a_leaderboard_from_stratified_means() {
    let spec = json!({
        "key": "ramp",
        "arms": [{"key": "base", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "thompson", "reward": "minutes"},
        "metrics": [{"key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary"}]
    });
    let r = report(spec, &RAMP, &[(0, 0.1), (1, 0.5)]);
    assert!(r.bandit && r.stratified);
    assert!(r.warnings.iter().all(|w| w.kind != WarningKind::Ramped));
    let board = r.bandit_leaderboard.expect("a leaderboard");
    assert_eq!(board.strata, 2);
    assert_eq!(board.arms[0].arm, "ai", "fewer minutes is better");
    assert!((board.arms[0].mean - 14.0).abs() < SAME);
    assert!((board.arms[1].mean - 15.0).abs() < SAME);
    let total: f64 = board.arms.iter().map(|a| a.prob_best).sum();
    assert!((total - 1.0).abs() < 1e-9);
    assert!(board.arms[0].expected_loss < board.arms[1].expected_loss);
    assert_eq!(r.featured_arm.as_deref(), Some("ai"));
}

/// A ratio metric under a ramp with a trend: cost per minute doubles for everyone in period 1
/// and the AI arm is 10% cheaper per minute in both periods. Pooled ratios make it look
/// dearer (most of its units came in the dear period); the decision is the combined ratio
/// stratified by period, from aggregates folded as the store folds them.
#[test]
fn a_ratio_metric_is_decided_on_the_ratio_stratified_by_period() {
    use liftlab_stats::{stratified_ratio_lift, CoMoments};

    let spec = parse(json!({
        "key": "ramp",
        "arms": [{"key": "base", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"base": 0.5, "ai": 0.5}},
        "metrics": [
            {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "secondary"},
            {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary"},
            {"key": "cost_per_minute", "kind": "cost", "direction": "decrease", "role": "primary",
             "ratio": {"numerator": "cost", "denominator": "minutes"}}
        ]
    }));
    let version = running(spec.clone());
    let mut live: std::collections::BTreeMap<AggKey, MetricAggregate> = Default::default();
    let mut raw: std::collections::BTreeMap<(u64, &str), CoMoments> = Default::default();
    let mut assignments: Vec<PeriodCount> = Vec::new();
    let mut i = 0u32;
    for (period, arm, n, rate) in [
        (0u64, "base", 270u64, 1.0),
        (0, "ai", 30, 0.9),
        (1, "base", 150, 2.0),
        (1, "ai", 150, 1.8),
    ] {
        assignments.push(PeriodCount {
            period,
            arm: arm.to_string(),
            count: n,
        });
        for _ in 0..n {
            i += 1;
            let minutes = f64::from(8 + i % 5);
            let cost = rate * minutes + 0.5 * (f64::from(i % 3) - 1.0);
            let a = crate::model::Assignment {
                experiment: "ramp".into(),
                unit_id: format!("u{i}"),
                task_id: format!("u{i}"),
                arm: arm.into(),
                in_experiment: true,
                version: 2,
                assignment_id: format!("a{i}"),
                propensity: 0.5,
                period,
                epoch: 0,
                segments: Default::default(),
                assigned_at: 0,
            };
            let o = crate::model::Outcome {
                event_id: format!("e{i}"),
                experiment: "ramp".into(),
                task_id: a.task_id.clone(),
                unit_id: a.unit_id.clone(),
                arm: arm.into(),
                epoch: 0,
                ts: 0,
                metrics: [("cost".to_string(), cost), ("minutes".to_string(), minutes)].into(),
                handled_by: None,
                model_version: None,
                attributes: Default::default(),
            };
            for d in crate::fold(&spec, &a, None, &o).deltas {
                live.entry(d.key.clone()).or_default().apply(&d);
            }
            raw.entry((period, arm)).or_default().push(cost, minutes);
        }
    }
    let aggregates: Vec<(AggKey, MetricAggregate)> = live.into_iter().collect();
    let periods = periods(&[(0, 0.1), (1, 0.5)]);
    let r = build(&ReportInput {
        version: &version,
        epoch: 0,
        aggregates: &aggregates,
        tallies: &[],
        assignments: &assignments,
        periods: &periods,
        epochs: &[],
        drift: None,
        pause_reason: None,
    });
    let m = r
        .metrics
        .iter()
        .find(|m| m.key == "cost_per_minute")
        .expect("the ratio metric");
    let c = &m.comparisons[0];
    assert!(c.note.is_none(), "{:?}", c.note);
    let pooled = c.relative.expect("a pooled diagnostic").estimate;
    assert!(pooled > 0.0, "pooled ratios are confounded: {pooled}");
    let d = c.decision.expect("a decision");
    assert_eq!(d.method, DecisionMethod::Stratified);
    let want = stratified_ratio_lift(
        &[
            (300, raw[&(0, "base")], raw[&(0, "ai")]),
            (300, raw[&(1, "base")], raw[&(1, "ai")]),
        ],
        MIN_UNITS_PER_STRATUM,
    )
    .expect("a lift");
    let s = c.stratified.expect("the stratified estimate");
    assert_eq!(s.strata, 2, "both periods have enough units of each arm");
    assert!((s.relative - want.relative).abs() < SAME, "{s:?} {want:?}");
    assert!((s.relative_se - want.relative_se).abs() < SAME);
    assert!((d.estimate - want.relative).abs() < SAME);
    assert!(
        (want.relative + 0.1).abs() < 0.01,
        "about 10% cheaper: {}",
        want.relative
    );
    assert_eq!(c.verdict, Verdict::Better);
}
