//! Tests of report assembly: numbers against liftlab-stats on two-pass statistics of raw data, gbstats and scipy reference values, the JSON shape and the CSV.

use std::collections::BTreeMap;

use expect_test::expect;
use liftlab_stats::{
    achieved_power, bayesian, cochran_q, effect_sizes, holm, relative_lift, welch_absolute,
    Alternative, Baseline, Design, Moments, PowerSettings, SampleStats,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::*;
use crate::drift::{Detection, Detector, DriftMonitor, ShiftDirection};
use crate::lifecycle::{ExperimentVersion, Transition};
use crate::model::{AggDelta, AggKey, AggScope, AllocationPeriod, MetricAggregate};
use crate::spec::ExperimentSpec;

/// Agreement expected between two computations of the same formula (rounding only).
const SAME: f64 = 1e-9;
/// The precision of gbstats' 5-decimal assertions.
const GB5: f64 = 1e-5;
/// The precision of gbstats' 9-decimal assertions.
const GB9: f64 = 1e-9;
/// Agreement with scipy values printed to full double precision.
const SCIPY: f64 = 1e-9;

fn close(actual: f64, expected: f64, tol: f64, what: &str) {
    let scale = expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tol * scale,
        "{what}: got {actual}, expected {expected} (tolerance {tol})"
    );
}

pub(super) fn parse(doc: Value) -> ExperimentSpec {
    match ExperimentSpec::parse(&doc) {
        Ok(spec) => spec,
        Err(e) => panic!("test spec is invalid: {e}"),
    }
}

pub(super) fn running(spec: ExperimentSpec) -> ExperimentVersion {
    ExperimentVersion::created(spec, 0)
        .transitioned(Transition::Start, None, 1)
        .expect("a draft can start")
}

/// The support-desk experiment most tests use.
fn support_spec(extra: Value) -> ExperimentSpec {
    let mut doc = json!({
        "key": "support-ai",
        "name": "Support AI assist",
        "hypothesis": "AI drafts cut cycle time without more escalations",
        "owner": "ops",
        "arms": [
            {"key": "human", "role": "baseline"},
            {"key": "ai_assist", "role": "treatment"}
        ],
        "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai_assist": 0.5}},
        "metrics": [
            {"key": "cycle_time", "kind": "duration", "direction": "decrease", "role": "primary"},
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail"},
            {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary"}
        ],
        "segments": ["region"],
        "roi": {"volume_per_month": 10000, "human_cost_per_hour": 40}
    });
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    parse(doc)
}

/// One unit of raw data.
#[derive(Clone, Debug)]
struct RawUnit {
    arm: String,
    values: BTreeMap<String, f64>,
    segments: BTreeMap<String, String>,
    propensity: f64,
}

/// Folds raw units into aggregates the way the store does: one `AggDelta` per unit and metric,
/// into the overall and each segment accumulator.
fn aggregate(epoch: u64, units: &[RawUnit]) -> Vec<(AggKey, MetricAggregate)> {
    let mut map: BTreeMap<AggKey, MetricAggregate> = BTreeMap::new();
    for u in units {
        for (metric, value) in &u.values {
            let mut scopes = vec![AggScope::Overall];
            for (attribute, v) in &u.segments {
                scopes.push(AggScope::Segment {
                    attribute: attribute.clone(),
                    value: v.clone(),
                });
            }
            for scope in scopes {
                let key = AggKey {
                    epoch,
                    arm: u.arm.clone(),
                    metric: metric.clone(),
                    scope,
                };
                map.entry(key.clone()).or_default().apply(&AggDelta {
                    key,
                    old: None,
                    new: *value,
                    propensity: u.propensity,
                });
            }
        }
    }
    map.into_iter().collect()
}

/// Mean and sample variance by the two-pass formula, straight from the raw values.
fn two_pass(xs: &[f64]) -> SampleStats {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    SampleStats::new(n, mean, var)
}

fn values(units: &[RawUnit], arm: &str, metric: &str) -> Vec<f64> {
    units
        .iter()
        .filter(|u| u.arm == arm)
        .filter_map(|u| u.values.get(metric).copied())
        .collect()
}

fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Support-desk data: cycle time in minutes, escalations and cost per case, with regions.
fn support_data(seed: u64, per_arm: usize, ai_minutes: f64, ai_escalation: f64) -> Vec<RawUnit> {
    let mut rng = StdRng::seed_from_u64(seed);
    let regions = ["emea", "amer", "apac"];
    let mut units = Vec::new();
    for (arm, minutes, escalation, cost) in [
        ("human", 30.0, 0.12, 6.0),
        ("ai_assist", ai_minutes, ai_escalation, 4.0),
    ] {
        for i in 0..per_arm {
            let t = (minutes + 8.0 * normal(&mut rng)).max(0.5);
            let e = if rng.random::<f64>() < escalation {
                1.0
            } else {
                0.0
            };
            let c = (cost + 1.5 * normal(&mut rng)).max(0.0);
            units.push(RawUnit {
                arm: arm.to_string(),
                values: BTreeMap::from([
                    ("cycle_time".to_string(), t),
                    ("escalated".to_string(), e),
                    ("cost".to_string(), c),
                ]),
                segments: BTreeMap::from([(
                    "region".to_string(),
                    regions[i % regions.len()].to_string(),
                )]),
                propensity: 0.5,
            });
        }
    }
    units
}

/// Assignment counts of a fixed 50/50 experiment where every unit reported.
fn counts(units: &[RawUnit]) -> (Vec<PeriodCount>, Vec<ArmTally>) {
    let mut per_arm: BTreeMap<&str, u64> = BTreeMap::new();
    for u in units {
        *per_arm.entry(&u.arm).or_default() += 1;
    }
    let assignments = per_arm
        .iter()
        .map(|(arm, n)| PeriodCount {
            period: 0,
            arm: arm.to_string(),
            count: *n,
        })
        .collect();
    let tallies = per_arm
        .iter()
        .map(|(arm, n)| ArmTally {
            arm: arm.to_string(),
            units: *n,
            outcomes: *n,
            handled_by: BTreeMap::new(),
        })
        .collect();
    (assignments, tallies)
}

fn fixed_period(spec: &ExperimentSpec) -> Vec<AllocationPeriod> {
    vec![AllocationPeriod {
        experiment: spec.key().to_string(),
        period: 0,
        weights: spec
            .arms()
            .iter()
            .map(|a| (a.key().to_string(), 1.0 / spec.arms().len() as f64))
            .collect(),
        opened_at: 0,
        rewards_seen: 0,
    }]
}

fn epochs() -> Vec<EpochInfo> {
    vec![EpochInfo {
        epoch: 0,
        reason: "created".to_string(),
        started_at: 0,
        version: 1,
    }]
}

/// Builds the report of epoch 0 over `units` with every unit assigned and reporting.
fn report_of(version: &ExperimentVersion, units: &[RawUnit]) -> Report {
    let aggregates = aggregate(0, units);
    let (assignments, tallies) = counts(units);
    let periods = fixed_period(&version.spec);
    let epochs = epochs();
    build(&ReportInput {
        version,
        epoch: 0,
        aggregates: &aggregates,
        tallies: &tallies,
        assignments: &assignments,
        periods: &periods,
        epochs: &epochs,
        drift: None,
        pause_reason: None,
    })
}

fn metric<'a>(report: &'a Report, key: &str) -> &'a MetricResult {
    report
        .metrics
        .iter()
        .find(|m| m.key == key)
        .unwrap_or_else(|| panic!("metric {key} is in the report"))
}

#[test]
fn numbers_match_the_stats_functions_on_two_pass_statistics() {
    let version = running(support_spec(
        json!({"analysis": {"sequential": false, "planned_units": 800}}),
    ));
    let units = support_data(7, 400, 25.0, 0.10);
    let report = report_of(&version, &units);
    let mut raw_p = Vec::new();
    for key in ["cycle_time", "escalated", "cost"] {
        let m = metric(&report, key);
        let b = two_pass(&values(&units, "human", key));
        let t = two_pass(&values(&units, "ai_assist", key));
        for (arm, stats) in [("human", b), ("ai_assist", t)] {
            let a = m.arms.iter().find(|a| a.arm == arm).expect("arm listed");
            assert_eq!(a.n as f64, stats.n, "{key} {arm} n");
            close(a.mean, stats.mean, SAME, &format!("{key} {arm} mean"));
            close(a.sd, stats.sd(), SAME, &format!("{key} {arm} sd"));
        }
        let c = &m.comparisons[0];
        let welch = welch_absolute(&b, &t, 0.05, Alternative::TwoSided).expect("welch");
        let rel = relative_lift(&b, &t, 0.05, Alternative::TwoSided).expect("lift");
        let abs = c.absolute.expect("absolute");
        close(abs.estimate, welch.estimate, SAME, "absolute estimate");
        close(abs.ci_low, welch.ci_low, SAME, "absolute ci_low");
        close(abs.ci_high, welch.ci_high, SAME, "absolute ci_high");
        close(c.p_value.expect("p"), welch.p_value, SAME, "p_value");
        let r = c.relative.expect("relative");
        close(r.estimate, rel.estimate, SAME, "relative estimate");
        close(r.ci_low, rel.ci_low, SAME, "relative ci_low");
        close(r.ci_high, rel.ci_high, SAME, "relative ci_high");
        let inverse = true; // every metric of this spec is "decrease".
        let bayes = bayesian(rel.estimate, rel.se, None, 0.05, inverse).expect("bayes");
        let got = c.bayes.expect("bayes in report");
        close(
            got.chance_to_win,
            bayes.chance_to_win,
            SAME,
            "chance to win",
        );
        close(
            got.risk_treatment,
            bayes.risk_treatment,
            SAME,
            "risk treatment",
        );
        let es = effect_sizes(&b, &t, key == "escalated").expect("effect sizes");
        let got = c.effect_size.expect("effect size in report");
        close(got.cohens_d, es.cohens_d, SAME, "cohen's d");
        close(got.hedges_g, es.hedges_g, SAME, "hedges' g");
        assert_eq!(
            got.cohens_h.is_some(),
            key == "escalated",
            "cohen's h only for binary"
        );
        assert!(c.sequential.is_some(), "sequential diagnostics always");
        raw_p.push(welch.p_value);
    }
    let adjusted = holm(&raw_p).expect("holm");
    for (key, want) in ["cycle_time", "escalated", "cost"].iter().zip(adjusted) {
        let got = metric(&report, key).comparisons[0]
            .p_value_adjusted
            .expect("adjusted");
        close(got, want, SAME, &format!("{key} holm-adjusted p"));
    }
    // Cycle time fell by about 5 of 30 minutes on 400 units per arm: clearly better.
    assert_eq!(
        metric(&report, "cycle_time").comparisons[0].verdict,
        Verdict::Better
    );
}

/// gbstats case 1 and 2: the same sufficient statistics give the same relative and absolute results.
#[test]
fn gbstats_cases_1_and_2_two_sided_t_test() {
    let spec = parse(json!({
        "key": "gb", "arms": [{"key": "a", "role": "baseline"}, {"key": "b", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"a": 0.5, "b": 0.5}},
        "metrics": [{"key": "m", "kind": "continuous", "direction": "increase", "role": "primary"}],
        "analysis": {"correction": "none", "sequential": false, "planned_units": 6868}
    }));
    let version = running(spec);
    let aggregates = vec![
        sums(0, "a", "m", 3407, 1396.87, 52377.9767),
        sums(0, "b", "m", 3461, 2422.7, 134698.29),
    ];
    let report = build_with(&version, &aggregates, &[]);
    let c = &metric(&report, "m").comparisons[0];
    let r = c.relative.expect("relative");
    close(r.estimate, 0.70732, GB5, "case 1 expected");
    close(r.ci_low, -0.03526, GB5, "case 1 ci low");
    close(r.ci_high, 1.44989, GB5, "case 1 ci high");
    let a = c.absolute.expect("absolute");
    close(a.estimate, 0.29, GB5, "case 2 expected");
    close(a.ci_low, 0.04538, GB5, "case 2 ci low");
    close(a.ci_high, 0.53462, GB5, "case 2 ci high");
    close(c.p_value.expect("p"), 0.02016, GB5, "case 2 p");
    // With no correction the adjusted p is the raw one.
    close(
        c.p_value_adjusted.expect("adj"),
        0.02016,
        GB5,
        "no correction",
    );
    // Welch's absolute p of 0.02 is only a diagnostic: the decision is on the relative lift,
    // whose interval (−3.5% to +145% even at a fixed horizon) includes 0.
    let d = c.decision.expect("decision");
    assert!(d.ci_low < 0.0 && 0.0 < d.ci_high, "{d:?}");
    assert!(d.p_value >= 0.05, "{d:?}");
    assert_eq!(c.verdict, Verdict::Inconclusive);
}

pub(super) fn sums(
    epoch: u64,
    arm: &str,
    metric: &str,
    n: u64,
    sum: f64,
    sum_sq: f64,
) -> (AggKey, MetricAggregate) {
    (
        AggKey {
            epoch,
            arm: arm.to_string(),
            metric: metric.to_string(),
            scope: AggScope::Overall,
        },
        MetricAggregate {
            moments: Moments::from_sums(n, sum, sum_sq),
            ipw_weight: 0.0,
            ipw_weighted_sum: 0.0,
        },
    )
}

pub(super) fn build_with(
    version: &ExperimentVersion,
    aggregates: &[(AggKey, MetricAggregate)],
    assignments: &[PeriodCount],
) -> Report {
    let periods = fixed_period(&version.spec);
    let epochs = epochs();
    build(&ReportInput {
        version,
        epoch: 0,
        aggregates,
        tallies: &[],
        assignments,
        periods: &periods,
        epochs: &epochs,
        drift: None,
        pause_reason: None,
    })
}

/// gbstats case 12: a count metric, Bayesian chance to win (and its inverse) and the
/// sequential interval with τ = 600.
#[test]
fn gbstats_case_12_bayes_and_sequential() {
    for (direction, chance, risk_treatment) in [
        ("increase", 0.071834168, 0.075691131),
        ("decrease", 0.928165832, 0.001617057),
    ] {
        let spec = parse(json!({
            "key": "gb12", "arms": [{"key": "zero", "role": "baseline"}, {"key": "one", "role": "treatment"}],
            "allocation": {"policy": "fixed", "weights": {"zero": 0.5, "one": 0.5}},
            "metrics": [{"key": "m", "kind": "count", "direction": direction, "role": "primary"}],
            "analysis": {"sequential": true, "sequential_tuning": 600}
        }));
        let version = running(spec);
        let aggregates = vec![
            sums(0, "zero", "m", 100, 270.0, 848.79),
            sums(0, "one", "m", 120, 300.0, 869.0),
        ];
        let report = build_with(&version, &aggregates, &[]);
        let c = &metric(&report, "m").comparisons[0];
        close(
            c.relative.expect("relative").estimate,
            -0.074074074,
            GB9,
            "case 12 expected",
        );
        let b = c.bayes.expect("bayes");
        close(b.chance_to_win, chance, GB9, "case 12 chance to win");
        close(
            b.risk_treatment,
            risk_treatment,
            GB9,
            "case 12 treatment risk",
        );
        let s = c.sequential.expect("sequential asked for");
        let rel = s.relative.expect("relative sequence");
        close(rel.ci_low, -0.233322085, GB9, "case 12 sequential ci low");
        assert!(rel.ci_high > 0.0, "the sequence still contains 0");
        assert_eq!(c.verdict, Verdict::Inconclusive);
    }
}

/// Under a bandit the expected counts are Σ N_period · w_period (scipy.stats.chisquare on
/// observed [400, 1100] against expected [450, 1050]).
#[test]
fn srm_under_a_bandit_uses_the_weights_of_each_period() {
    let spec = parse(json!({
        "key": "bandit", "arms": [{"key": "human", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "thompson", "reward": "resolved"},
        "metrics": [{"key": "resolved", "kind": "binary", "direction": "increase", "role": "primary"}]
    }));
    let version = running(spec);
    let period = |p: u64, w: f64| AllocationPeriod {
        experiment: "bandit".to_string(),
        period: p,
        weights: vec![("human".to_string(), w), ("ai".to_string(), 1.0 - w)],
        opened_at: 1_772_357_400_000 + 3_600_000 * i64::try_from(p).expect("small"),
        rewards_seen: 0,
    };
    let periods = vec![period(0, 0.5), period(1, 0.2)];
    let count = |period: u64, arm: &str, count: u64| PeriodCount {
        period,
        arm: arm.to_string(),
        count,
    };
    let assignments = vec![
        count(0, "human", 250),
        count(0, "ai", 250),
        count(1, "human", 150),
        count(1, "ai", 850),
    ];
    let epochs = epochs();
    let report = build(&ReportInput {
        version: &version,
        epoch: 0,
        aggregates: &[],
        tallies: &[],
        assignments: &assignments,
        periods: &periods,
        epochs: &epochs,
        drift: None,
        pause_reason: None,
    });
    close(report.srm.chi2, 7.936507936507937, SCIPY, "srm chi2");
    close(report.srm.p_value, 0.0048447237392998345, SCIPY, "srm p");
    assert!(report.srm.ok, "p = 0.005 is above the 0.001 threshold");
    assert_eq!(report.arms[0].assigned, 400);
    assert_eq!(report.arms[1].assigned, 1100);
    close(
        report.arms[0].expected_share,
        450.0 / 1500.0,
        SAME,
        "human share",
    );
    close(
        report.arms[1].expected_share,
        1050.0 / 1500.0,
        SAME,
        "ai share",
    );
    assert_eq!(report.allocation.len(), 2);
    assert_eq!(report.allocation[1].assigned["ai"], 850);
    close(
        report.allocation[1].weights["human"],
        0.2,
        SAME,
        "period 1 weight",
    );
    assert_eq!(report.allocation[1].opened_at, "2026-03-01T10:30:00Z");
    assert!(report.bandit);
}

/// scipy.stats.chi2_contingency([[90, 60], [10, 40]], correction=False): chi2 24, p 9.63e-7.
#[test]
fn differential_attrition_is_a_chi_square_on_outcome_by_arm() {
    let version = running(support_spec(json!({})));
    let assignments = vec![
        PeriodCount {
            period: 0,
            arm: "human".to_string(),
            count: 100,
        },
        PeriodCount {
            period: 0,
            arm: "ai_assist".to_string(),
            count: 100,
        },
    ];
    let tallies = vec![
        ArmTally {
            arm: "human".to_string(),
            units: 90,
            outcomes: 95,
            handled_by: BTreeMap::new(),
        },
        ArmTally {
            arm: "ai_assist".to_string(),
            units: 60,
            outcomes: 61,
            handled_by: BTreeMap::new(),
        },
    ];
    let periods = fixed_period(&version.spec);
    let epochs = epochs();
    let report = build(&ReportInput {
        version: &version,
        epoch: 0,
        aggregates: &[],
        tallies: &tallies,
        assignments: &assignments,
        periods: &periods,
        epochs: &epochs,
        drift: None,
        pause_reason: None,
    });
    close(report.attrition.chi2, 24.0, SCIPY, "attrition chi2");
    close(
        report.attrition.p_value,
        9.63357008643095e-07,
        1e-12,
        "attrition p",
    );
    assert!(!report.attrition.ok);
    assert_eq!(report.attrition.arms[0].coverage, Some(0.9));
    assert_eq!(report.attrition.arms[1].coverage, Some(0.6));
    assert!(report
        .warnings
        .iter()
        .any(|w| w.kind == WarningKind::Attrition));
}

#[test]
fn chi_square_of_three_arms_matches_scipy() {
    // scipy.stats.chi2_contingency([[800, 700, 650], [200, 300, 350]], correction=False).
    let (chi2, p) = health::chi2_independence(&[(800.0, 200.0), (700.0, 300.0), (650.0, 350.0)]);
    close(chi2, 57.455540355677165, SCIPY, "chi2");
    close(p, 3.339549878812072e-13, 1e-15, "p");
    assert_eq!(
        health::chi2_independence(&[(5.0, 0.0), (7.0, 0.0)]),
        (0.0, 1.0)
    );
    assert_eq!(health::chi2_independence(&[(5.0, 3.0)]), (0.0, 1.0));
}

#[test]
fn verdict_reads_through_the_direction_and_names_guardrails_and_money() {
    let version = running(support_spec(json!({})));
    let units = support_data(11, 600, 24.0, 0.12);
    let report = report_of(&version, &units);
    let primary = &metric(&report, "cycle_time").comparisons[0];
    assert_eq!(
        primary.verdict,
        Verdict::Better,
        "lower cycle time is better"
    );
    let d = primary.decision.expect("decision");
    assert!(d.estimate < 0.0 && d.ci_high < 0.0);
    // The headline shows the decision's interval, named by its method and level.
    let words = format!(
        "AI assist cuts cycle time by {}% ({} {}% interval {}–{}%)",
        text::percent(d.estimate),
        d.method.interval_name(),
        text::level(1.0 - d.interval_level),
        text::percent(d.ci_high),
        text::percent(d.ci_low)
    );
    assert!(
        report.verdict.starts_with(&words),
        "{} / {words}",
        report.verdict
    );
    assert!(
        report
            .verdict
            .contains("no clear harm to escalated (always-valid"),
        "{}",
        report.verdict
    );
    assert!(!report.verdict.contains("unchanged"), "{}", report.verdict);
    assert!(
        report.verdict.contains("saves about $"),
        "{}",
        report.verdict
    );
    assert!(report.verdict.ends_with(" a month."), "{}", report.verdict);
    assert_eq!(report.featured_arm.as_deref(), Some("ai_assist"));

    // The same data with the arms' labels swapped make the treatment worse.
    let mut swapped = units.clone();
    for u in &mut swapped {
        u.arm = if u.arm == "human" {
            "ai_assist"
        } else {
            "human"
        }
        .to_string();
    }
    let report = report_of(&version, &swapped);
    let c = &metric(&report, "cycle_time").comparisons[0];
    assert_eq!(c.verdict, Verdict::Worse);
    assert!(
        report.verdict.contains("raises cycle time by"),
        "{}",
        report.verdict
    );
    assert!(
        report.verdict.contains("which is worse"),
        "{}",
        report.verdict
    );
    assert!(
        report.verdict.contains("costs about $"),
        "{}",
        report.verdict
    );
}

#[test]
fn a_significantly_worse_guardrail_is_flagged_and_harm_is_found_sequentially() {
    let version = running(support_spec(
        json!({"analysis": {"auto_pause_on_harm": true, "sequential": false, "planned_units": 3000}}),
    ));
    let units = support_data(3, 1500, 30.0, 0.30);
    let report = report_of(&version, &units);
    let g = report
        .guardrails
        .iter()
        .find(|g| g.metric == "escalated")
        .expect("guardrail listed");
    assert_eq!(g.verdict, Verdict::Worse);
    assert!(!g.ok);
    assert!(report.warnings.iter().any(|w| w.kind == WarningKind::Harm));
    let harm = report
        .harm
        .as_ref()
        .expect("harm found by the guardrail's harm test");
    assert_eq!(
        (harm.metric.as_str(), harm.arm.as_str()),
        ("escalated", "ai_assist")
    );
    assert!(harm.ci_low > 0.0, "escalations went up: {harm:?}");
    // The harm test's always-valid interval is wider than the fixed-horizon relative one
    // at twice the alpha (both ends are one-sided bounds at alpha).
    let c = &metric(&report, "escalated").comparisons[0];
    let d = c.decision.expect("harm decision");
    assert_eq!(d.test, DecisionTest::Harm);
    assert_eq!((harm.ci_low, harm.ci_high), (d.ci_low, d.ci_high));
    let b = two_pass(&values(&units, "human", "escalated"));
    let t = two_pass(&values(&units, "ai_assist", "escalated"));
    let rel = relative_lift(&b, &t, 0.10, Alternative::TwoSided).expect("lift");
    assert!(
        d.ci_low < rel.ci_low && rel.ci_high < d.ci_high,
        "{d:?} {rel:?}"
    );
    assert!(
        report.verdict.contains("harms guardrail escalated: +"),
        "{}",
        report.verdict
    );
    // What `auto_pause_on_harm` reads (the harm keys' aggregates only) finds the same harm.
    assert_eq!(harm_from_keys(&version, &units), report.harm);
    let calm = support_data(3, 1500, 30.0, 0.10);
    assert_eq!(report_of(&version, &calm).harm, None);
    assert_eq!(harm_from_keys(&version, &calm), None);
}

/// [`harm_of`] over the aggregates of [`harm_keys`] alone, as the write step gathers them.
fn harm_from_keys(version: &ExperimentVersion, units: &[RawUnit]) -> Option<Harm> {
    let spec = &version.spec;
    let wanted: Vec<AggKey> = spec
        .arms()
        .iter()
        .flat_map(|a| harm_keys(spec, 0, a.key(), 0))
        .collect();
    let aggregates: Vec<(AggKey, MetricAggregate)> = aggregate(0, units)
        .into_iter()
        .filter(|(k, _)| wanted.contains(k))
        .collect();
    assert!(
        aggregates.len() < aggregate(0, units).len(),
        "segments left out"
    );
    let (assignments, _) = counts(units);
    harm_of(spec, 0, &aggregates, &assignments)
}

#[test]
fn roi_turns_the_cost_difference_into_monthly_savings_with_its_interval() {
    let version = running(support_spec(json!({})));
    let units = support_data(5, 500, 24.0, 0.1);
    let report = report_of(&version, &units);
    let roi = report.roi.as_ref().expect("roi settings given");
    let b = two_pass(&values(&units, "human", "cost"));
    let t = two_pass(&values(&units, "ai_assist", "cost"));
    // Savings follow the cost metric's decision: −(relative lift) × baseline cost × volume.
    let d = metric(&report, "cost").comparisons[0]
        .decision
        .expect("cost decision");
    let rel = relative_lift(&b, &t, 0.05, Alternative::TwoSided).expect("lift");
    close(d.estimate, rel.estimate, SAME, "decision estimate");
    let s = roi.monthly_savings.expect("savings");
    close(s.estimate, (b.mean - t.mean) * 10000.0, SAME, "savings");
    close(s.ci_low, -d.ci_high * b.mean * 10000.0, SAME, "savings low");
    close(
        s.ci_high,
        -d.ci_low * b.mean * 10000.0,
        SAME,
        "savings high",
    );
    let net = roi.net_monthly_savings.expect("net savings");
    assert_eq!(net, s, "no fixed cost declared, so net is gross");
    close(
        roi.cost_per_case["human"],
        b.mean,
        SAME,
        "human cost per case",
    );
    close(
        roi.cost_per_case["ai_assist"],
        t.mean,
        SAME,
        "ai cost per case",
    );
    assert_eq!(roi.savings_basis, Some(SavingsBasis::CostMetric));
    assert_eq!(roi.cost_metric.as_deref(), Some("cost"));
    assert_eq!(roi.duration_metric.as_deref(), Some("cycle_time"));
    let d = two_pass(&values(&units, "human", "cycle_time")).mean
        - two_pass(&values(&units, "ai_assist", "cycle_time")).mean;
    let hours = roi.hours_saved_per_month.expect("hours");
    close(hours.estimate, d / 60.0 * 10000.0, SAME, "hours saved");
    close(
        roi.labour_savings_per_month.expect("labour").estimate,
        d / 60.0 * 10000.0 * 40.0,
        SAME,
        "labour savings",
    );
    let ci = roi.cost_per_case_ci["human"];
    assert!(ci.ci_low < b.mean && b.mean < ci.ci_high);
}

#[test]
fn automation_coverage_and_quality_adjusted_productivity() {
    let version = running(support_spec(json!({})));
    let units = support_data(9, 300, 24.0, 0.1);
    let aggregates = aggregate(0, &units);
    let (assignments, mut tallies) = counts(&units);
    for t in &mut tallies {
        if t.arm == "ai_assist" {
            t.handled_by = BTreeMap::from([(HandledBy::Ai, 240), (HandledBy::Human, 60)]);
        }
    }
    let periods = fixed_period(&version.spec);
    let epochs = epochs();
    let report = build(&ReportInput {
        version: &version,
        epoch: 0,
        aggregates: &aggregates,
        tallies: &tallies,
        assignments: &assignments,
        periods: &periods,
        epochs: &epochs,
        drift: None,
        pause_reason: None,
    });
    assert!(
        !report
            .warnings
            .iter()
            .any(|w| w.kind == WarningKind::Contamination),
        "the AI arm handled by AI is no contamination"
    );
    // Baseline outcomes that say AI took part are flagged, with their counts.
    let mut contaminated = tallies.clone();
    for t in &mut contaminated {
        if t.arm == "human" {
            t.handled_by = BTreeMap::from([
                (HandledBy::Human, 280),
                (HandledBy::Ai, 12),
                (HandledBy::Hybrid, 8),
            ]);
        }
    }
    let flagged = build(&ReportInput {
        tallies: &contaminated,
        ..ReportInput {
            version: &version,
            epoch: 0,
            aggregates: &aggregates,
            tallies: &tallies,
            assignments: &assignments,
            periods: &periods,
            epochs: &epochs,
            drift: None,
            pause_reason: None,
        }
    });
    let warning = flagged
        .warnings
        .iter()
        .find(|w| w.kind == WarningKind::Contamination)
        .expect("contamination flagged");
    assert!(
        warning.message.starts_with(
            "20 of 300 outcomes of the baseline human say AI took part (12 by AI, 8 hybrid)"
        ),
        "{}",
        warning.message
    );
    let roi = report.roi.as_ref().expect("roi");
    assert_eq!(roi.automation_coverage.get("ai_assist"), Some(&0.8));
    assert_eq!(
        roi.automation_coverage.get("human"),
        None,
        "no outcome said who handled it"
    );
    assert_eq!(
        report.productivity.quality_metrics,
        vec!["escalated".to_string()]
    );
    for arm in ["human", "ai_assist"] {
        let p = report
            .productivity
            .arms
            .iter()
            .find(|p| p.arm == arm)
            .expect("arm");
        let esc = two_pass(&values(&units, arm, "escalated")).mean;
        let minutes = two_pass(&values(&units, arm, "cycle_time")).mean;
        assert_eq!(p.completed, 300);
        close(
            p.quality_share.expect("share"),
            1.0 - esc,
            SAME,
            "quality share",
        );
        close(
            p.quality_adjusted_cases.expect("cases"),
            300.0 * (1.0 - esc),
            SAME,
            "cases",
        );
        close(
            p.quality_adjusted_per_hour.expect("per hour"),
            (1.0 - esc) / (minutes / 60.0),
            SAME,
            "per hour",
        );
    }
}

#[test]
fn power_uses_the_baseline_of_the_primary_metric() {
    let version = running(support_spec(
        json!({"analysis": {"mde": 0.1, "power": 0.8, "sequential": false, "planned_units": 240}}),
    ));
    let units = support_data(13, 120, 28.0, 0.1);
    let report = report_of(&version, &units);
    let power = report.power.as_ref().expect("power");
    let b = two_pass(&values(&units, "human", "cycle_time"));
    let baseline = Baseline {
        mean: b.mean,
        variance: b.variance,
    };
    let settings = PowerSettings {
        alpha: 0.05,
        alternative: Alternative::TwoSided,
        design: Design::Fixed,
        relative: true,
    };
    let want = achieved_power(&baseline, 0.1, 120.0, &settings).expect("power");
    close(
        power.achieved_power.expect("achieved"),
        want,
        SAME,
        "achieved power",
    );
    assert_eq!(power.n_per_arm, 120);
    let needed = power.needed_per_arm.expect("needed");
    let more = power.more_units_needed.expect("more");
    assert_eq!(more, ((needed.ceil() - 120.0).max(0.0) * 2.0) as u64);
}

#[test]
fn segments_merge_the_long_tail_and_test_heterogeneity_and_disparate_impact() {
    let version = running(support_spec(json!({})));
    let mut rng = StdRng::seed_from_u64(21);
    let mut units = Vec::new();
    // Twelve regions with decreasing sizes; region r0 escalates far more often.
    for r in 0..12u32 {
        let size = 200 - 10 * r as usize;
        for arm in ["human", "ai_assist"] {
            for _ in 0..size {
                let base = if arm == "human" { 30.0 } else { 26.0 };
                let esc_rate = if r == 0 { 0.6 } else { 0.1 };
                units.push(RawUnit {
                    arm: arm.to_string(),
                    values: BTreeMap::from([
                        (
                            "cycle_time".to_string(),
                            (base + 6.0 * normal(&mut rng)).max(0.5),
                        ),
                        (
                            "escalated".to_string(),
                            if rng.random::<f64>() < esc_rate {
                                1.0
                            } else {
                                0.0
                            },
                        ),
                    ]),
                    segments: BTreeMap::from([("region".to_string(), format!("r{r}"))]),
                    propensity: 0.5,
                });
            }
        }
    }
    let report = report_of(&version, &units);
    let s = &report.segments[0];
    assert_eq!(s.attribute, "region");
    let names: Vec<&str> = s.values.iter().map(|v| v.value.as_str()).collect();
    assert_eq!(
        names,
        ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "other"]
    );
    let other = s.values.last().expect("other");
    // r9, r10 and r11 hold 110 + 100 + 90 units per arm.
    assert_eq!(other.arms[0].n, 300);
    let tail: Vec<f64> = units
        .iter()
        .filter(|u| {
            u.arm == "human" && ["r9", "r10", "r11"].contains(&u.segments["region"].as_str())
        })
        .map(|u| u.values["cycle_time"])
        .collect();
    close(
        other.arms[0].mean,
        two_pass(&tail).mean,
        SAME,
        "merged mean",
    );

    // Cochran's Q over the ten buckets' relative lifts, from two-pass statistics.
    let mut pairs = Vec::new();
    for bucket in &names {
        let pick = |arm: &str| -> Vec<f64> {
            units
                .iter()
                .filter(|u| u.arm == arm)
                .filter(|u| {
                    let r = u.segments["region"].as_str();
                    if *bucket == "other" {
                        ["r9", "r10", "r11"].contains(&r)
                    } else {
                        r == *bucket
                    }
                })
                .map(|u| u.values["cycle_time"])
                .collect()
        };
        let lift = relative_lift(
            &two_pass(&pick("human")),
            &two_pass(&pick("ai_assist")),
            0.05,
            Alternative::TwoSided,
        )
        .expect("lift");
        pairs.push((lift.estimate, lift.se));
    }
    let q = cochran_q(&pairs).expect("q");
    let h = &s.heterogeneity[0];
    close(h.q, q.q, SAME, "cochran q");
    close(h.p_value, q.p_value, SAME, "cochran p");
    assert_eq!(h.df, 9.0);

    // r0's no-escalation rate (about 0.4) is far below the best region's (about 0.9).
    let di = s
        .disparate_impact
        .iter()
        .find(|d| d.metric == "escalated" && d.arm == "human")
        .expect("disparate impact of escalations");
    assert_eq!(di.least_favoured, "r0");
    assert!(di.flagged && di.ratio < 0.8, "{di:?}");
    assert!(report
        .warnings
        .iter()
        .any(|w| w.kind == WarningKind::DisparateImpact));
}

#[test]
fn bandit_reports_hajek_means_beside_naive_ones() {
    let spec = parse(json!({
        "key": "bandit", "arms": [{"key": "human", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "thompson", "reward": "resolved"},
        "metrics": [{"key": "resolved", "kind": "binary", "direction": "increase", "role": "primary"}]
    }));
    let version = running(spec);
    let mut rng = StdRng::seed_from_u64(4);
    let mut units = Vec::new();
    for i in 0..400 {
        // Later units are more likely resolved and were served with a different propensity.
        let late = i >= 200;
        for arm in ["human", "ai"] {
            let p = match (arm, late) {
                ("ai", true) => 0.8,
                ("ai", false) | ("human", false) => 0.5,
                _ => 0.2,
            };
            let rate = if late { 0.7 } else { 0.4 };
            let y = if rng.random::<f64>() < rate { 1.0 } else { 0.0 };
            units.push(RawUnit {
                arm: arm.to_string(),
                values: BTreeMap::from([("resolved".to_string(), y)]),
                segments: BTreeMap::new(),
                propensity: p,
            });
        }
    }
    let report = report_of(&version, &units);
    for a in &metric(&report, "resolved").arms {
        let (mut w, mut wy) = (0.0, 0.0);
        for u in units.iter().filter(|u| u.arm == a.arm) {
            w += 1.0 / u.propensity;
            wy += u.values["resolved"] / u.propensity;
        }
        close(
            a.ipw_mean.expect("ipw under a bandit"),
            wy / w,
            SAME,
            "hajek mean",
        );
        assert!(
            (a.ipw_mean.expect("ipw") - a.mean).abs() > 1e-3,
            "the two means differ"
        );
    }
    let fixed = report_of(
        &running(support_spec(json!({}))),
        &support_data(1, 50, 25.0, 0.1),
    );
    assert!(fixed
        .metrics
        .iter()
        .all(|m| m.arms.iter().all(|a| a.ipw_mean.is_none())));
}

#[test]
fn an_empty_epoch_gives_the_full_shape_without_numbers() {
    let version = running(support_spec(json!({})));
    let report = report_of(&version, &[]);
    assert_eq!(report.srm.p_value, 1.0);
    assert!(report.srm.ok && report.attrition.ok);
    let c = &metric(&report, "cycle_time").comparisons[0];
    assert!(c.absolute.is_none() && c.p_value.is_none());
    assert_eq!(c.verdict, Verdict::Collecting);
    assert!(c.decision.is_none() && c.bayes.is_none());
    assert!(c
        .note
        .as_deref()
        .is_some_and(|n| n.starts_with("not enough data")));
    assert_eq!(
        report.verdict,
        "No units assigned yet, so there is nothing to compare."
    );
    assert!(report
        .warnings
        .iter()
        .any(|w| w.kind == WarningKind::LowData));
    let power = report.power.as_ref().expect("power section");
    assert!(power.achieved_power.is_none() && power.note.is_some());
    // The JSON has the same keys as a full report.
    let empty = serde_json::to_value(&report).expect("json");
    let full =
        serde_json::to_value(report_of(&version, &support_data(2, 60, 25.0, 0.1))).expect("json");
    let top = |v: &Value| {
        v.as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(top(&empty), top(&full));
}

/// Every key path of a JSON value (array elements merged), one per line.
fn shape(v: &Value) -> Vec<String> {
    fn walk(v: &Value, path: &str, out: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let p = format!("{path}.{k}");
                    out.insert(p.clone());
                    walk(child, &p, out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(item, &format!("{path}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(v, "", &mut out);
    out.into_iter().collect()
}

/// The JSON shape clients rely on (DESIGN.md's keys plus the extra sections), pinned.
#[test]
fn json_shape_snapshot() {
    let version = running(support_spec(json!({
        "analysis": {"sequential": true},
        "drift": {"metrics": ["cycle_time"]}
    })));
    let units = support_data(17, 200, 20.0, 0.1);
    let aggregates = aggregate(0, &units);
    let (assignments, tallies) = counts(&units);
    let periods = fixed_period(&version.spec);
    let epochs = epochs();
    let monitor = monitor_with_detection(&version.spec);
    let report = build(&ReportInput {
        version: &version,
        epoch: 0,
        aggregates: &aggregates,
        tallies: &tallies,
        assignments: &assignments,
        periods: &periods,
        epochs: &epochs,
        drift: Some(&monitor),
        pause_reason: None,
    });
    let json = serde_json::to_value(&report).expect("json");
    expect![[r#"
        .allocation
        .allocation[].assigned
        .allocation[].assigned.ai_assist
        .allocation[].assigned.human
        .allocation[].opened_at
        .allocation[].opened_at_ms
        .allocation[].period
        .allocation[].srm
        .allocation[].srm.chi2
        .allocation[].srm.ok
        .allocation[].srm.p_value
        .allocation[].weights
        .allocation[].weights.ai_assist
        .allocation[].weights.human
        .analysis
        .analysis.alpha
        .analysis.correction
        .analysis.family
        .analysis.family_size
        .analysis.final_answer
        .analysis.method
        .analysis.planned_units
        .analysis.units
        .arms
        .arms[].assigned
        .arms[].expected_share
        .arms[].handled_by
        .arms[].key
        .arms[].role
        .attrition
        .attrition.arms
        .attrition.arms[].arm
        .attrition.arms[].assigned
        .attrition.arms[].coverage
        .attrition.arms[].with_outcome
        .attrition.chi2
        .attrition.ok
        .attrition.p_value
        .bandit
        .bandit_leaderboard
        .drift
        .drift[].action
        .drift[].arm
        .drift[].detected_at
        .drift[].detected_at_ms
        .drift[].detector
        .drift[].direction
        .drift[].metric
        .effect_drift
        .epoch
        .epochs
        .epochs[].current
        .epochs[].epoch
        .epochs[].reason
        .epochs[].started_at
        .epochs[].started_at_ms
        .epochs[].version
        .experiment
        .featured_arm
        .guardrails
        .guardrails[].arm
        .guardrails[].decision
        .guardrails[].decision.alpha
        .guardrails[].decision.ci_high
        .guardrails[].decision.ci_low
        .guardrails[].decision.estimate
        .guardrails[].decision.interval_level
        .guardrails[].decision.method
        .guardrails[].decision.p_value
        .guardrails[].decision.test
        .guardrails[].decision.threshold
        .guardrails[].max_harm
        .guardrails[].metric
        .guardrails[].ok
        .guardrails[].verdict
        .harm
        .metrics
        .metrics[].arms
        .metrics[].arms[].arm
        .metrics[].arms[].ipw_mean
        .metrics[].arms[].mean
        .metrics[].arms[].n
        .metrics[].arms[].sd
        .metrics[].comparisons
        .metrics[].comparisons[].absolute
        .metrics[].comparisons[].absolute.ci_high
        .metrics[].comparisons[].absolute.ci_low
        .metrics[].comparisons[].absolute.estimate
        .metrics[].comparisons[].arm
        .metrics[].comparisons[].baseline
        .metrics[].comparisons[].bayes
        .metrics[].comparisons[].bayes.chance_to_win
        .metrics[].comparisons[].bayes.ci_high
        .metrics[].comparisons[].bayes.ci_low
        .metrics[].comparisons[].bayes.risk_control
        .metrics[].comparisons[].bayes.risk_treatment
        .metrics[].comparisons[].cuped
        .metrics[].comparisons[].decision
        .metrics[].comparisons[].decision.alpha
        .metrics[].comparisons[].decision.ci_high
        .metrics[].comparisons[].decision.ci_low
        .metrics[].comparisons[].decision.estimate
        .metrics[].comparisons[].decision.interval_level
        .metrics[].comparisons[].decision.method
        .metrics[].comparisons[].decision.p_value
        .metrics[].comparisons[].decision.test
        .metrics[].comparisons[].decision.threshold
        .metrics[].comparisons[].effect_size
        .metrics[].comparisons[].effect_size.cohens_d
        .metrics[].comparisons[].effect_size.cohens_h
        .metrics[].comparisons[].effect_size.hedges_g
        .metrics[].comparisons[].evidence
        .metrics[].comparisons[].evidence.enough
        .metrics[].comparisons[].evidence.min_each_way
        .metrics[].comparisons[].evidence.min_units
        .metrics[].comparisons[].evidence.outcomes_each_way
        .metrics[].comparisons[].evidence.units
        .metrics[].comparisons[].note
        .metrics[].comparisons[].p_value
        .metrics[].comparisons[].p_value_adjusted
        .metrics[].comparisons[].relative
        .metrics[].comparisons[].relative.ci_high
        .metrics[].comparisons[].relative.ci_low
        .metrics[].comparisons[].relative.estimate
        .metrics[].comparisons[].sequential
        .metrics[].comparisons[].sequential.ci_high
        .metrics[].comparisons[].sequential.ci_low
        .metrics[].comparisons[].sequential.p_value
        .metrics[].comparisons[].sequential.p_value_adjusted
        .metrics[].comparisons[].sequential.relative
        .metrics[].comparisons[].sequential.relative.ci_high
        .metrics[].comparisons[].sequential.relative.ci_low
        .metrics[].comparisons[].sequential.relative.estimate
        .metrics[].comparisons[].verdict
        .metrics[].direction
        .metrics[].key
        .metrics[].kind
        .metrics[].role
        .name
        .pause_reason
        .policy
        .power
        .power.achieved_power
        .power.alpha
        .power.design
        .power.mde
        .power.mde_now
        .power.metric
        .power.more_units_needed
        .power.n_per_arm
        .power.needed_per_arm
        .power.note
        .power.target_power
        .productivity
        .productivity.arms
        .productivity.arms[].arm
        .productivity.arms[].completed
        .productivity.arms[].quality_adjusted_cases
        .productivity.arms[].quality_adjusted_per_hour
        .productivity.arms[].quality_share
        .productivity.quality_metrics
        .roi
        .roi.arm
        .roi.automation_coverage
        .roi.break_even_volume
        .roi.by_arm
        .roi.by_arm[].arm
        .roi.by_arm[].hours_saved_per_month
        .roi.by_arm[].hours_saved_per_month.ci_high
        .roi.by_arm[].hours_saved_per_month.ci_low
        .roi.by_arm[].hours_saved_per_month.estimate
        .roi.by_arm[].monthly_savings
        .roi.by_arm[].monthly_savings.ci_high
        .roi.by_arm[].monthly_savings.ci_low
        .roi.by_arm[].monthly_savings.estimate
        .roi.cost_metric
        .roi.cost_per_case
        .roi.cost_per_case.ai_assist
        .roi.cost_per_case.human
        .roi.cost_per_case_ci
        .roi.cost_per_case_ci.ai_assist
        .roi.cost_per_case_ci.ai_assist.ci_high
        .roi.cost_per_case_ci.ai_assist.ci_low
        .roi.cost_per_case_ci.ai_assist.estimate
        .roi.cost_per_case_ci.human
        .roi.cost_per_case_ci.human.ci_high
        .roi.cost_per_case_ci.human.ci_low
        .roi.cost_per_case_ci.human.estimate
        .roi.currency
        .roi.duration_metric
        .roi.fixed_monthly_cost
        .roi.hours_saved_per_month
        .roi.hours_saved_per_month.ci_high
        .roi.hours_saved_per_month.ci_low
        .roi.hours_saved_per_month.estimate
        .roi.human_cost_per_hour
        .roi.labour_savings_per_month
        .roi.labour_savings_per_month.ci_high
        .roi.labour_savings_per_month.ci_low
        .roi.labour_savings_per_month.estimate
        .roi.monthly_savings
        .roi.monthly_savings.ci_high
        .roi.monthly_savings.ci_low
        .roi.monthly_savings.estimate
        .roi.net_monthly_savings
        .roi.net_monthly_savings.ci_high
        .roi.net_monthly_savings.ci_low
        .roi.net_monthly_savings.estimate
        .roi.savings_basis
        .roi.volume_per_month
        .segments
        .segments[].attribute
        .segments[].disparate_impact
        .segments[].disparate_impact[].arm
        .segments[].disparate_impact[].flagged
        .segments[].disparate_impact[].least_favoured
        .segments[].disparate_impact[].metric
        .segments[].disparate_impact[].most_favoured
        .segments[].disparate_impact[].ratio
        .segments[].heterogeneity
        .segments[].heterogeneity[].arm
        .segments[].heterogeneity[].df
        .segments[].heterogeneity[].i_squared
        .segments[].heterogeneity[].p_value
        .segments[].heterogeneity[].q
        .segments[].values
        .segments[].values[].arms
        .segments[].values[].arms[].arm
        .segments[].values[].arms[].ipw_mean
        .segments[].values[].arms[].mean
        .segments[].values[].arms[].n
        .segments[].values[].arms[].sd
        .segments[].values[].lifts
        .segments[].values[].lifts[].arm
        .segments[].values[].lifts[].p_value
        .segments[].values[].lifts[].relative
        .segments[].values[].lifts[].relative.ci_high
        .segments[].values[].lifts[].relative.ci_low
        .segments[].values[].lifts[].relative.estimate
        .segments[].values[].value
        .srm
        .srm.chi2
        .srm.ok
        .srm.p_value
        .status
        .stratified
        .timeline
        .verdict
        .version
        .warnings
        .warnings[].kind
        .warnings[].message"#]]
    .assert_eq(&shape(&json).join("\n"));
    // DESIGN.md's literal values.
    assert_eq!(json["policy"], "fixed");
    assert_eq!(json["status"], "running");
    assert_eq!(json["drift"][0]["action"], "workload_drift");
    assert_eq!(json["drift"][0]["detector"], "cusum");
    assert_eq!(json["drift"][0]["direction"], "up");
    assert_eq!(json["drift"][0]["detected_at"], "2026-03-01T09:30:00Z");
    assert_eq!(json["metrics"][1]["kind"], "binary");
    assert_eq!(json["metrics"][0]["comparisons"][0]["verdict"], "better");
    // Round trip: a client can read the report back.
    let back: Report = serde_json::from_value(json).expect("report deserializes");
    assert_eq!(back, report);
}

/// A monitor holding one detection, made by feeding a real shifted stream.
fn monitor_with_detection(spec: &ExperimentSpec) -> DriftMonitor {
    let mut monitor = DriftMonitor::new();
    let mut rng = StdRng::seed_from_u64(99);
    let mut ts = 1_772_357_400_000 - 2_000_000;
    for i in 0..5000 {
        let shift = if i >= 1000 { 16.0 } else { 0.0 };
        ts += 1000;
        let outcome = crate::model::Outcome {
            event_id: format!("e{i}"),
            experiment: spec.key().to_string(),
            task_id: format!("t{i}"),
            unit_id: format!("u{i}"),
            arm: "human".to_string(),
            epoch: 0,
            ts,
            metrics: BTreeMap::from([(
                "cycle_time".to_string(),
                30.0 + shift + 8.0 * normal(&mut rng),
            )]),
            handled_by: None,
            model_version: None,
            attributes: BTreeMap::new(),
        };
        if !monitor.observe(spec, &outcome).is_empty() {
            break;
        }
    }
    assert_eq!(monitor.detections().len(), 1, "the shift is detected once");
    // Pin the timestamp so the snapshot does not depend on the detection delay.
    let d = &monitor.detections()[0];
    let mut pinned = DriftMonitor::new();
    pinned.push_detection_for_tests(Detection {
        detected_at: 1_772_357_400_000,
        detector: Detector::Cusum,
        direction: ShiftDirection::Up,
        ..d.clone()
    });
    pinned
}

#[test]
fn csv_has_one_row_per_comparison_with_the_json_numbers() {
    let spec = parse(json!({
        "key": "three", "arms": [
            {"key": "human", "role": "baseline"},
            {"key": "ai_draft", "role": "treatment"},
            {"key": "ai_full", "role": "treatment"}
        ],
        "allocation": {"policy": "fixed", "weights": {"human": 0.4, "ai_draft": 0.3, "ai_full": 0.3}},
        "metrics": [
            {"key": "cycle_time", "kind": "duration", "direction": "decrease", "role": "primary"},
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail"}
        ],
        "analysis": {"correction": "bh", "sequential": false, "planned_units": 1000}
    }));
    let version = running(spec);
    let mut units = support_data(8, 150, 26.0, 0.1);
    for u in units.iter_mut().skip(250) {
        u.arm = "ai_full".to_string();
    }
    for u in units.iter_mut().filter(|u| u.arm == "ai_assist") {
        u.arm = "ai_draft".to_string();
    }
    for u in &mut units {
        u.values.remove("cost");
    }
    let report = report_of(&version, &units);
    let csv = report.to_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 2 * 2, "header plus metrics × treatments");
    assert_eq!(lines[0], csv::CSV_HEADER.join(","));
    let col = |name: &str| {
        csv::CSV_HEADER
            .iter()
            .position(|h| *h == name)
            .expect("column")
    };
    let mut row = 1;
    for m in &report.metrics {
        for c in &m.comparisons {
            let cells: Vec<&str> = lines[row].split(',').collect();
            assert_eq!(cells.len(), csv::CSV_HEADER.len());
            assert_eq!(cells[col("metric")], m.key);
            assert_eq!(cells[col("arm")], c.arm);
            assert_eq!(cells[col("verdict")], c.verdict.as_str());
            let num = |name: &str| cells[col(name)].parse::<f64>().expect("number");
            assert_eq!(num("absolute"), c.absolute.expect("abs").estimate);
            assert_eq!(num("p_value_adjusted"), c.p_value_adjusted.expect("adj"));
            assert_eq!(
                num("sequential_p_value"),
                c.sequential.expect("sequential").p_value
            );
            match c.decision {
                Some(d) => {
                    assert_eq!(cells[col("decision_method")], d.method.as_str());
                    assert_eq!(num("decision_ci_low"), d.ci_low);
                    assert_eq!(num("decision_ci_high"), d.ci_high);
                    assert_eq!(num("decision_p_value"), d.p_value);
                }
                None => assert_eq!(cells[col("decision_p_value")], "", "collecting"),
            }
            row += 1;
        }
    }
    // Benjamini–Hochberg across the four comparisons.
    let raw: Vec<f64> = report
        .metrics
        .iter()
        .flat_map(|m| m.comparisons.iter().filter_map(|c| c.p_value))
        .collect();
    let bh = liftlab_stats::benjamini_hochberg(&raw).expect("bh");
    let got: Vec<f64> = report
        .metrics
        .iter()
        .flat_map(|m| m.comparisons.iter().filter_map(|c| c.p_value_adjusted))
        .collect();
    assert_eq!(got, bh);
}

#[test]
fn drift_entries_and_epochs() {
    let version = running(support_spec(json!({"drift": {"metrics": ["cycle_time"]}})));
    let monitor = monitor_with_detection(&version.spec);
    let all_epochs = vec![
        EpochInfo {
            epoch: 0,
            reason: "created".to_string(),
            started_at: 0,
            version: 1,
        },
        EpochInfo {
            epoch: 1,
            reason: "drift in cycle_time".to_string(),
            started_at: 1_772_357_400_000,
            version: 3,
        },
    ];
    let input = |epoch| ReportInput {
        version: &version,
        epoch,
        aggregates: &[],
        tallies: &[],
        assignments: &[],
        periods: &[],
        epochs: &all_epochs,
        drift: Some(&monitor),
        pause_reason: None,
    };
    let old = build(&input(0));
    // A level detection is workload drift, whether or not a later epoch exists.
    assert_eq!(old.drift[0].action, DriftAction::WorkloadDrift);
    assert!(old.epochs[0].current && !old.epochs[1].current);
    let new = build(&input(1));
    assert_eq!(new.drift[0].action, DriftAction::WorkloadDrift);
    assert!(new.effect_drift.is_empty());
    assert_eq!(new.epochs[1].started_at, "2026-03-01T09:30:00Z");
    assert!(new.warnings.iter().any(|w| w.kind == WarningKind::Drift
        && w.message.starts_with(
            "Cycle time drifted up in human at 2026-03-01T09:30:00Z (cusum); workload drift"
        )));
}

#[test]
fn effect_drift_entries_carry_the_before_and_after_effect() {
    let version = running(support_spec(json!({"drift": {"metrics": ["cycle_time"]}})));
    let mut monitor = DriftMonitor::new();
    let effect = |estimate: f64, half: f64| crate::drift::EffectEstimate {
        estimate,
        ci_low: estimate - half,
        ci_high: estimate + half,
    };
    monitor.push_effect_detection_for_tests(crate::drift::EffectDetection {
        metric: "cycle_time".to_string(),
        arm: "ai".to_string(),
        baseline: "human".to_string(),
        detected_at: 1_772_357_400_000,
        effect_before: effect(-0.2, 0.02),
        effect_after: effect(-0.1, 0.05),
    });
    let epochs = |n: u64| -> Vec<EpochInfo> {
        (0..n)
            .map(|epoch| EpochInfo {
                epoch,
                reason: "created".to_string(),
                started_at: 0,
                version: 1,
            })
            .collect()
    };
    let report = |all: &[EpochInfo]| {
        build(&ReportInput {
            version: &version,
            epoch: 0,
            aggregates: &[],
            tallies: &[],
            assignments: &[],
            periods: &[],
            epochs: all,
            drift: Some(&monitor),
            pause_reason: None,
        })
    };
    let current = report(&epochs(1));
    let json = serde_json::to_value(&current).unwrap();
    let e = &json["effect_drift"][0];
    assert_eq!(e["metric"], "cycle_time");
    assert_eq!(e["arm"], "ai");
    assert_eq!(e["detected_at"], "2026-03-01T09:30:00Z");
    assert_eq!(e["effect_before"]["estimate"], -0.2);
    assert_eq!(e["effect_after"]["estimate"], -0.1);
    assert_eq!(e["effect_after"]["ci_low"], -0.15000000000000002);
    assert_eq!(e["action"], "rebaseline_proposed");
    let warning = current
        .warnings
        .iter()
        .find(|w| w.kind == WarningKind::EffectDrift)
        .expect("an effect warning");
    assert!(
        warning.message.contains("advantage changed")
            && warning
                .message
                .contains("from −20.0% (−22.0% to −18.0%) to −10.0% (−15.0% to −5.0%)")
            || warning
                .message
                .contains("from -20.0% (-22.0% to -18.0%) to -10.0% (-15.0% to -5.0%)"),
        "{}",
        warning.message
    );
    let old = report(&epochs(2));
    assert_eq!(old.effect_drift[0].action, DriftAction::Rebaselined);
}

#[test]
fn a_paused_experiment_says_why_first() {
    let version = running(support_spec(json!({})))
        .transitioned(
            Transition::Pause,
            Some("guardrail escalated is worse".to_string()),
            2,
        )
        .expect("pause");
    let periods = fixed_period(&version.spec);
    let epochs = epochs();
    let report = build(&ReportInput {
        version: &version,
        epoch: 0,
        aggregates: &[],
        tallies: &[],
        assignments: &[],
        periods: &periods,
        epochs: &epochs,
        drift: None,
        pause_reason: Some("guardrail escalated is worse"),
    });
    assert_eq!(report.warnings[0].kind, WarningKind::Paused);
    assert_eq!(
        report.warnings[0].message,
        "The experiment is paused: guardrail escalated is worse."
    );
}

#[test]
fn timestamps_match_python_datetime() {
    // datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat().
    for (ms, want) in [
        (0, "1970-01-01T00:00:00Z"),
        (1_772_357_400_000, "2026-03-01T09:30:00Z"),
        (951_782_400_123, "2000-02-29T00:00:00.123Z"),
        (-86_400_000, "1969-12-31T00:00:00Z"),
        (4_102_444_799_000, "2099-12-31T23:59:59Z"),
    ] {
        assert_eq!(format_ts(ms), want);
    }
}

#[test]
fn words_for_numbers() {
    assert_eq!(text::percent(-0.184), "18");
    assert_eq!(text::percent(0.047), "4.7");
    assert_eq!(text::signed_percent(-0.03), "−3.0%");
    assert_eq!(text::money(41_234.0, "USD"), "$41k");
    assert_eq!(text::money(1_234.0, "EUR"), "€1.2k");
    assert_eq!(text::money(-850.4, "CHF"), "−CHF 850");
    assert_eq!(text::money(2_500_000.0, "GBP"), "£2.5M");
    // Half away from zero on the amount rounded to cents, whatever its last bits.
    assert_eq!(text::money(19.5, "USD"), "$20");
    assert_eq!(text::money(19.499_999_999_999_996, "USD"), "$20");
    assert_eq!(text::money(18.5, "USD"), "$19");
    assert_eq!(text::money(-18.5, "USD"), "−$19");
    assert_eq!(text::money(41_500.0, "USD"), "$42k");
    assert_eq!(text::money(1_249.999_999_999_9, "EUR"), "€1.3k");
    assert_eq!(text::money(-0.4, "USD"), "$0");
    assert_eq!(text::humanize("ai_assist"), "AI assist");
    assert_eq!(text::number(-0.0001), "0.000");
    // Whole numbers (degrees of freedom, counts) have no decimals.
    assert_eq!(text::number(2.0), "2");
    assert_eq!(text::number(12.0), "12");
    assert_eq!(text::number(2.5), "2.50");
    assert_eq!(text::number(0.05), "0.050");
    // A p-value in a sentence is never "p = <0.0001".
    assert_eq!(text::p_is(0.031), "p = 0.031");
    assert_eq!(text::p_is(0.00004), "p < 0.0001");
    assert_eq!(text::level(0.05), "95");
    assert_eq!(text::level(0.1), "90");
}

#[test]
fn timeline_orders_days_and_arms() {
    let version = running(support_spec(json!({})));
    let day = |d: i64, arm: &str, xs: &[f64]| {
        let mut m = Moments::new();
        for x in xs {
            m.push(*x);
        }
        (
            AggKey {
                epoch: 0,
                arm: arm.to_string(),
                metric: "cycle_time".to_string(),
                scope: AggScope::Day(d),
            },
            MetricAggregate {
                moments: m,
                ipw_weight: 0.0,
                ipw_weighted_sum: 0.0,
            },
        )
    };
    let aggregates = vec![
        day(20_514, "ai_assist", &[20.0, 22.0]),
        day(20_513, "human", &[30.0]),
        day(20_514, "human", &[31.0, 29.0, 33.0]),
        day(20_513, "ai_assist", &[]),
    ];
    let points = timeline(&version.spec, 0, &aggregates);
    let got: Vec<(String, &str, u64, f64)> = points
        .iter()
        .map(|p| (p.date.clone(), p.arm.as_str(), p.n, p.mean))
        .collect();
    assert_eq!(
        got,
        vec![
            ("2026-03-01".to_string(), "human", 1, 30.0),
            ("2026-03-02".to_string(), "human", 3, 31.0),
            ("2026-03-02".to_string(), "ai_assist", 2, 21.0),
        ]
    );
    assert!(timeline(&version.spec, 1, &aggregates).is_empty());
}

#[test]
fn the_power_note_says_why_low_power_and_a_decided_verdict_both_hold() {
    // A large effect on few units: decided, yet short of the power planned for a 5% lift.
    let version = running(support_spec(json!({"analysis": {"mde": 0.05}})));
    let report = report_of(&version, &support_data(3, 200, 20.0, 0.12));
    let c = &metric(&report, "cycle_time").comparisons[0];
    assert_eq!(c.verdict, Verdict::Better, "{}", report.verdict);
    let power = report.power.as_ref().expect("power");
    assert!(power.achieved_power.is_some_and(|a| a < power.target_power));
    let note = text::power_note(&report).expect("a note");
    assert!(
        note.starts_with("Verdict already reached (better): the effect found, −")
            && note.ends_with("is larger than the 5.0% lift this power is for; more units would narrow its interval."),
        "{note}"
    );

    // A fixed horizon short of its planned units says the answer is not final yet.
    let version = running(support_spec(
        json!({"analysis": {"mde": 0.05, "sequential": false, "planned_units": 100_000}}),
    ));
    let report = report_of(&version, &support_data(3, 200, 20.0, 0.12));
    let note = text::power_note(&report).expect("a note");
    assert!(
        note.starts_with("Verdict so far (better): ")
            && note.ends_with("; the fixed-horizon answer is final at 100000 units."),
        "{note}"
    );

    // No verdict yet, no note: the units still needed say it all.
    let report = report_of(&version, &support_data(3, 200, 30.0, 0.12));
    assert_ne!(
        metric(&report, "cycle_time").comparisons[0].verdict,
        Verdict::Better
    );
    assert_eq!(text::power_note(&report), None);
}
