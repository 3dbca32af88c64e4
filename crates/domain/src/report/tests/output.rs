//! What the report renders into and carries along: CSV, drift and effect-drift entries, epochs, text, timestamps and the timeline.

use super::*;

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
    let frame = Frame::of(&version);
    let report = build(&ReportInput {
        pause_reason: Some("guardrail escalated is worse"),
        ..frame.input(&version, &[], &[], &[])
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
