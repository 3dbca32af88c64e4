//! The report's JSON shape, full and for an empty epoch, pinned by a snapshot.

use super::*;

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
    let monitor = monitor_with_detection(&version.spec);
    let frame = Frame::of(&version);
    let report = build(&ReportInput {
        drift: Some(&monitor),
        ..frame.input(&version, &aggregates, &tallies, &assignments)
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
