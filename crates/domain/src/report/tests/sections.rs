//! The report's sections: the verdict, guardrails and harm, ROI, productivity, power, segments and a bandit's means.

use super::*;

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
    let frame = Frame::of(&version);
    let report = build(&frame.input(&version, &aggregates, &tallies, &assignments));
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
    let flagged = build(&frame.input(&version, &aggregates, &contaminated, &assignments));
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
