//! Tests of the one decision per comparison: verdict, interval and p-value always agree; the family correction; guardrail harm tests; minimum evidence; the headline.

use liftlab_stats::{holm, relative_lift, sequential, Alternative, SampleStats, DEFAULT_TAU};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::tests::{build_with, parse, running, sums};
use super::*;

/// Agreement expected between two computations of the same formula (rounding only).
const SAME: f64 = 1e-9;

fn close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= SAME * expected.abs().max(1.0),
        "{what}: got {actual}, expected {expected}"
    );
}

/// A two-arm spec whose metrics are given as (key, kind, direction, role).
fn spec_with(metrics: &[(&str, &str, &str, &str)], analysis: Value) -> ExperimentSpec {
    let metrics: Vec<Value> = metrics
        .iter()
        .map(|(key, kind, direction, role)| {
            json!({"key": key, "kind": kind, "direction": direction, "role": role})
        })
        .collect();
    parse(json!({
        "key": "decide",
        "arms": [{"key": "base", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"base": 0.5, "ai": 0.5}},
        "metrics": metrics,
        "analysis": analysis
    }))
}

/// Aggregates from (n, mean, sd) per arm.
fn arm(metric: &str, arm: &str, n: u64, mean: f64, sd: f64) -> (AggKey, MetricAggregate) {
    let nf = n as f64;
    let sum = mean * nf;
    let sum_sq = sd * sd * (nf - 1.0) + sum * mean;
    sums(0, arm, metric, n, sum, sum_sq)
}

fn assigned(n: u64) -> Vec<PeriodCount> {
    ["base", "ai"]
        .iter()
        .map(|a| PeriodCount {
            period: 0,
            arm: a.to_string(),
            count: n,
        })
        .collect()
}

/// Checks every invariant of every comparison's decision in `report`.
fn check_agreement(report: &Report) {
    for m in &report.metrics {
        for c in &m.comparisons {
            if let (Some(r), true) = (c.relative, m.kind != crate::spec::MetricKind::Continuous) {
                assert!(
                    r.ci_low >= -1.0,
                    "the diagnostic lift is bounded too: {r:?}"
                );
            }
            let Some(d) = c.decision else {
                assert!(
                    matches!(c.verdict, Verdict::Collecting | Verdict::Inconclusive),
                    "no decision, no verdict: {c:?}"
                );
                continue;
            };
            assert!(d.ci_low <= d.estimate && d.estimate <= d.ci_high, "{d:?}");
            assert!((0.0..=1.0).contains(&d.p_value), "{d:?}");
            if m.kind != crate::spec::MetricKind::Continuous {
                assert!(
                    d.ci_low >= -1.0,
                    "a non-negative metric cannot fall below −100%: {d:?}"
                );
            }
            let up = m.direction == crate::spec::Direction::Increase;
            match d.test {
                DecisionTest::TwoSided => {
                    let excludes = d.ci_low > 0.0 || d.ci_high < 0.0;
                    assert_eq!(excludes, d.p_value < d.alpha, "{d:?}");
                    let expected = if !excludes {
                        Verdict::Inconclusive
                    } else if (d.ci_low > 0.0) == up {
                        Verdict::Better
                    } else {
                        Verdict::Worse
                    };
                    assert_eq!(c.verdict, expected, "{d:?}");
                }
                DecisionTest::Harm => {
                    let beyond = if up {
                        d.ci_high < d.threshold
                    } else {
                        d.ci_low > d.threshold
                    };
                    assert_eq!(beyond, d.p_value < d.alpha, "{d:?}");
                    let expected = if beyond {
                        Verdict::Worse
                    } else {
                        Verdict::Inconclusive
                    };
                    assert_eq!(c.verdict, expected, "{d:?}");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Over random sufficient statistics, methods and corrections, the verdict, the decision
    /// interval and its p-value always agree.
    #[test]
    fn verdict_interval_and_p_value_always_agree(
        n in prop::collection::vec((30u64..5000, 30u64..5000), 3),
        means in prop::collection::vec((0.05f64..0.95, -0.3f64..0.3), 3),
        sds in prop::collection::vec((0.1f64..3.0, 0.1f64..3.0), 3),
        up in prop::collection::vec(any::<bool>(), 3),
        correction in prop::sample::select(vec!["none", "holm", "bh"]),
        sequential in any::<bool>(),
        alpha in prop::sample::select(vec![0.01, 0.05, 0.1]),
    ) {
        let direction = |i: usize| if up[i] { "increase" } else { "decrease" };
        let spec = spec_with(
            &[
                ("rate", "binary", direction(0), "primary"),
                ("minutes", "duration", direction(1), "secondary"),
                ("quality", "continuous", direction(2), "guardrail"),
            ],
            json!({"correction": correction, "alpha": alpha, "sequential": sequential, "planned_units": 10000}),
        );
        let version = running(spec);
        let mut aggregates = Vec::new();
        for (i, key) in ["rate", "minutes", "quality"].iter().enumerate() {
            let (nb, nt) = n[i];
            let (base, lift) = means[i];
            let treated = if i == 0 { (base * (1.0 + lift)).clamp(0.01, 0.99) } else { base * 10.0 * (1.0 + lift) };
            let base = if i == 0 { base } else { base * 10.0 };
            let (sb, st) = if i == 0 {
                ((base * (1.0 - base)).sqrt(), (treated * (1.0 - treated)).sqrt())
            } else {
                sds[i]
            };
            aggregates.push(arm(key, "base", nb, base, sb));
            aggregates.push(arm(key, "ai", nt, treated, st));
        }
        let report = build_with(&version, &aggregates, &assigned(6000));
        check_agreement(&report);
    }
}

/// The family's decision p-values are the spec's correction of each comparison's own test,
/// and each interval's level is α·p/p_adjusted.
#[test]
fn the_family_is_corrected_together_and_intervals_widen_to_match() {
    let spec = spec_with(
        &[
            ("a", "continuous", "increase", "primary"),
            ("b", "continuous", "increase", "secondary"),
            ("c", "continuous", "increase", "secondary"),
            ("g", "continuous", "increase", "guardrail"),
        ],
        json!({"correction": "holm"}),
    );
    let version = running(spec);
    let arms = [
        ("a", 10.0, 10.6),
        ("b", 10.0, 10.3),
        ("c", 10.0, 9.95),
        ("g", 10.0, 10.0),
    ];
    let mut aggregates = Vec::new();
    for (key, b, t) in arms {
        aggregates.push(arm(key, "base", 800, b, 4.0));
        aggregates.push(arm(key, "ai", 800, t, 4.0));
    }
    let report = build_with(&version, &aggregates, &assigned(800));
    assert_eq!(report.analysis.family, ["a", "b", "c"]);
    assert_eq!(report.analysis.method, DecisionMethod::Sequential);
    let base = SampleStats::new(800.0, 10.0, 16.0);
    let raw: Vec<f64> = arms[..3]
        .iter()
        .map(|(_, _, t)| {
            let treated = SampleStats::new(800.0, *t, 16.0);
            let r = relative_lift(&base, &treated, 0.05, Alternative::TwoSided).expect("lift");
            sequential(
                r.estimate,
                r.se,
                1600.0,
                0.05,
                DEFAULT_TAU,
                Alternative::TwoSided,
            )
            .expect("sequential")
            .p_value
        })
        .collect();
    let adjusted = holm(&raw).expect("holm");
    for (i, (key, _, _)) in arms[..3].iter().enumerate() {
        let m = report
            .metrics
            .iter()
            .find(|m| m.key == *key)
            .expect("metric");
        let d = m.comparisons[0].decision.expect("decision");
        close(d.p_value, adjusted[i], &format!("{key} adjusted p"));
        close(
            d.interval_level,
            1.0 - 0.05 * raw[i] / adjusted[i],
            &format!("{key} interval level"),
        );
    }
    // The guardrail is outside the family: its harm test runs at alpha, whatever the family.
    let g = report.guardrails.first().expect("guardrail");
    let d = g.decision.expect("harm test");
    assert_eq!(d.test, DecisionTest::Harm);
    assert_eq!(d.alpha, 0.05);
    close(d.interval_level, 0.9, "two one-sided bounds at alpha");
    check_agreement(&report);
}

/// Adding secondary metrics does not dilute a guardrail's harm test.
#[test]
fn guardrail_harm_is_not_diluted_by_other_metrics() {
    let harm = |metrics: &[(&str, &str, &str, &str)]| {
        let version = running(spec_with(metrics, json!({})));
        let mut aggregates = vec![
            arm("escalated", "base", 6000, 0.10, 0.3),
            arm("escalated", "ai", 6000, 0.14, 0.347),
        ];
        for (key, _, _, _) in metrics.iter().filter(|m| m.0 != "escalated") {
            aggregates.push(arm(key, "base", 6000, 5.0, 2.0));
            aggregates.push(arm(key, "ai", 6000, 5.01, 2.0));
        }
        let report = build_with(&version, &aggregates, &assigned(6000));
        check_agreement(&report);
        report.guardrails[0].decision.expect("harm test")
    };
    let alone = harm(&[
        ("primary", "continuous", "increase", "primary"),
        ("escalated", "binary", "decrease", "guardrail"),
    ]);
    let crowded = harm(&[
        ("primary", "continuous", "increase", "primary"),
        ("escalated", "binary", "decrease", "guardrail"),
        ("s1", "continuous", "increase", "secondary"),
        ("s2", "continuous", "increase", "secondary"),
        ("s3", "continuous", "increase", "secondary"),
        ("s4", "continuous", "increase", "secondary"),
    ]);
    assert_eq!(alone, crowded);
    assert!(alone.p_value < 0.05 && alone.ci_low > 0.0, "{alone:?}");
}

/// Below 30 units per arm, or fewer than 5 successes or failures in a binary arm, a
/// comparison is collecting: no verdict and no chance to win.
#[test]
fn below_the_minimum_evidence_a_comparison_is_collecting() {
    let spec = spec_with(
        &[
            ("resolved", "binary", "increase", "primary"),
            ("minutes", "duration", "decrease", "secondary"),
        ],
        json!({}),
    );
    let version = running(spec);
    let check = |n: u64, successes: f64, expected_enough: bool| {
        let aggregates = vec![
            sums(0, "base", "resolved", n, successes, successes),
            sums(0, "ai", "resolved", n, n as f64 / 2.0, n as f64 / 2.0),
            arm("minutes", "base", n, 30.0, 10.0),
            arm("minutes", "ai", n, 20.0, 10.0),
        ];
        let report = build_with(&version, &aggregates, &assigned(n));
        check_agreement(&report);
        let c = &report.metrics[0].comparisons[0];
        assert_eq!(c.evidence.enough, expected_enough, "{n} {successes}: {c:?}");
        if !expected_enough {
            assert_eq!(c.verdict, Verdict::Collecting);
            assert!(c.decision.is_none() && c.bayes.is_none());
            assert!(
                report.verdict.starts_with("Collecting data"),
                "{}",
                report.verdict
            );
        } else {
            assert_ne!(c.verdict, Verdict::Collecting);
            assert!(c.decision.is_some() && c.bayes.is_some());
        }
        report
    };
    check(29, 10.0, false);
    check(30, 4.0, false);
    check(30, 26.0, false);
    check(30, 5.0, true);
    // The duration metric with 29 units per arm says nothing in the headline.
    let report = check(29, 10.0, false);
    assert!(!report.verdict.contains("minutes"), "{}", report.verdict);
}

/// The headline names every metric whose decision is better or worse, harms first, and
/// never says "unchanged".
#[test]
fn the_headline_names_harms_first_and_never_says_unchanged() {
    let spec = spec_with(
        &[
            ("resolved", "binary", "increase", "primary"),
            ("handle_time", "duration", "decrease", "secondary"),
            ("inference_cost", "cost", "decrease", "secondary"),
            ("csat", "binary", "increase", "guardrail"),
        ],
        json!({}),
    );
    let version = running(spec);
    let aggregates = vec![
        sums(0, "base", "resolved", 3000, 1200.0, 1200.0),
        sums(0, "ai", "resolved", 3000, 1560.0, 1560.0),
        arm("handle_time", "base", 3000, 20.0, 8.0),
        arm("handle_time", "ai", 3000, 22.0, 8.0),
        arm("inference_cost", "base", 3000, 1.0, 0.5),
        arm("inference_cost", "ai", 3000, 3.05, 0.5),
        sums(0, "base", "csat", 3000, 2400.0, 2400.0),
        sums(0, "ai", "csat", 3000, 2390.0, 2390.0),
    ];
    let report = build_with(&version, &aggregates, &assigned(3000));
    check_agreement(&report);
    let v = &report.verdict;
    assert!(
        v.starts_with("AI raises resolved by 30% (always-valid"),
        "{v}"
    );
    let handle = v
        .find("raises handle time by 10%")
        .expect("handle time named");
    let cost = v.find("raises inference cost by 205%").expect("cost named");
    assert!(v.contains("which is worse"), "{v}");
    assert!(handle < v.len() && cost < v.len());
    assert!(
        v.contains("no clear harm to CSAT (always-valid 90% interval"),
        "{v}"
    );
    assert!(!v.contains("unchanged"), "{v}");
}

/// The three aggregates of a paired metric (x, y, x + y per unit) for one arm.
fn paired(metric: &str, arm: &str, pairs: &[(f64, f64)]) -> Vec<(AggKey, MetricAggregate)> {
    let mut parts = [
        (AggScope::Overall, liftlab_stats::Moments::new()),
        (AggScope::Paired, liftlab_stats::Moments::new()),
        (AggScope::PairSum, liftlab_stats::Moments::new()),
    ];
    for &(x, y) in pairs {
        parts[0].1.push(x);
        parts[1].1.push(y);
        parts[2].1.push(x + y);
    }
    parts
        .into_iter()
        .map(|(scope, moments)| {
            (
                AggKey {
                    epoch: 0,
                    arm: arm.to_string(),
                    metric: metric.to_string(),
                    scope,
                },
                MetricAggregate {
                    moments,
                    ..MetricAggregate::default()
                },
            )
        })
        .collect()
}

/// A deterministic value in [0, 1) per (i, salt).
fn noise(i: u32, salt: u32) -> f64 {
    let x = (u64::from(i) * 2_654_435_761 + u64::from(salt) * 40_503) % 1_000_003;
    x as f64 / 1_000_003.0
}

/// A ratio metric compares Σx/Σy per arm with the delta method's per-unit variance: the
/// decision equals the sequential test of the relative lift of those per-arm statistics.
#[test]
fn a_ratio_metric_decides_on_its_delta_method_statistics() {
    let spec = parse(json!({
        "key": "ratio",
        "arms": [{"key": "base", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"base": 0.5, "ai": 0.5}},
        "metrics": [
            {"key": "resolved", "kind": "binary", "direction": "increase", "role": "primary"},
            {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary"},
            {"key": "cost_per_resolved", "kind": "cost", "direction": "decrease", "role": "secondary",
             "ratio": {"numerator": "cost", "denominator": "resolved"}}
        ],
        "analysis": {"correction": "none"}
    }));
    let version = running(spec);
    let pairs = |arm_cost: f64, rate: f64| -> Vec<(f64, f64)> {
        (0..600)
            .map(|i| {
                let resolved = if noise(i, 1) < rate { 1.0 } else { 0.0 };
                (arm_cost * (0.5 + noise(i, 2)), resolved)
            })
            .collect()
    };
    let (b, t) = (pairs(10.0, 0.6), pairs(8.0, 0.7));
    let mut aggregates = paired("cost_per_resolved", "base", &b);
    aggregates.extend(paired("cost_per_resolved", "ai", &t));
    let report = build_with(&version, &aggregates, &assigned(600));
    check_agreement(&report);
    let m = report
        .metrics
        .iter()
        .find(|m| m.key == "cost_per_resolved")
        .expect("ratio metric");
    let co = |pairs: &[(f64, f64)]| {
        let mut c = liftlab_stats::CoMoments::new();
        for &(x, y) in pairs {
            c.push(x, y);
        }
        liftlab_stats::ratio_stats(&c).expect("ratio")
    };
    let (rb, rt) = (co(&b), co(&t));
    close(m.arms[0].mean, rb.mean, "baseline ratio");
    close(m.arms[1].mean, rt.mean, "treatment ratio");
    let rel = relative_lift(&rb, &rt, 0.05, Alternative::TwoSided).expect("lift");
    let seq = sequential(
        rel.estimate,
        rel.se,
        1200.0,
        0.05,
        DEFAULT_TAU,
        Alternative::TwoSided,
    )
    .expect("sequential");
    let d = m.comparisons[0].decision.expect("decision");
    close(d.estimate, rel.estimate, "ratio lift");
    close(d.p_value, seq.p_value, "ratio p (no correction)");
    close(d.ci_low, seq.ci_low, "ratio ci low");
    assert_eq!(m.comparisons[0].verdict, Verdict::Better, "{d:?}");
}

/// A metric with a covariate decides on the CUPED-adjusted lift, which is narrower when the
/// covariate explains the metric, and reports how much variance it removed.
#[test]
fn a_covariate_narrows_the_decision_by_cuped() {
    let spec = |covariate: bool| {
        let mut metric = json!({"key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary"});
        if covariate {
            metric["covariate"] = json!({"attribute": "estimated_minutes"});
        }
        parse(json!({
            "key": "cuped",
            "arms": [{"key": "base", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
            "allocation": {"policy": "fixed", "weights": {"base": 0.5, "ai": 0.5}},
            "metrics": [metric]
        }))
    };
    let pairs = |effect: f64, salt: u32| -> Vec<(f64, f64)> {
        (0..500)
            .map(|i| {
                let estimate = 10.0 + 40.0 * noise(i, salt);
                let minutes = estimate * (1.0 + effect) + 6.0 * noise(i, salt + 7);
                (minutes, estimate)
            })
            .collect()
    };
    let (b, t) = (pairs(0.0, 1), pairs(-0.05, 2));
    let mut aggregates = paired("minutes", "base", &b);
    aggregates.extend(paired("minutes", "ai", &t));
    let adjusted = build_with(&running(spec(true)), &aggregates, &assigned(500));
    let plain = build_with(&running(spec(false)), &aggregates, &assigned(500));
    check_agreement(&adjusted);
    let (a, p) = (
        &adjusted.metrics[0].comparisons[0],
        &plain.metrics[0].comparisons[0],
    );
    let cu = a.cuped.expect("cuped result");
    assert!(p.cuped.is_none());
    assert!(cu.variance_reduction > 0.8, "{cu:?}");
    let (da, dp) = (a.decision.expect("decision"), p.decision.expect("decision"));
    assert!(
        da.ci_high - da.ci_low < 0.5 * (dp.ci_high - dp.ci_low),
        "{da:?} {dp:?}"
    );
    assert_eq!(da.estimate, cu.estimate);
    // The same theta and adjusted lift as the stats crate's CUPED on the raw pairs.
    let co = |pairs: &[(f64, f64)]| {
        let mut c = liftlab_stats::CoMoments::new();
        for &(x, y) in pairs {
            c.push(x, y);
        }
        c
    };
    let reference = liftlab_stats::cuped(&co(&b), &co(&t)).expect("cuped");
    close(cu.theta, reference.theta(), "theta");
    let r = reference
        .relative(0.05, Alternative::TwoSided)
        .expect("relative");
    close(cu.estimate, r.estimate, "adjusted lift");
    close(cu.se, r.se, "adjusted se");
    assert_eq!(a.verdict, Verdict::Better, "{da:?}");
}
