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
