//! The report's numbers against liftlab-stats on two-pass statistics, the gbstats cases and scipy: comparisons, SRM, attrition.

use super::*;

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
    let frame = Frame {
        periods,
        epochs: epochs(),
    };
    let report = build(&frame.input(&version, &[], &[], &assignments));
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
    let report = build(&Frame::of(&version).input(&version, &[], &tallies, &assignments));
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
