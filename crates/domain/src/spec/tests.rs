//! Tests of the spec module: defaults, the pinned normalized document, getters, metric values.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;

fn minimal() -> Value {
    json!({
        "key": "checkout-ai",
        "arms": [
            {"key": "human", "role": "baseline"},
            {"key": "ai", "role": "treatment", "description": "AI drafts"}
        ],
        "allocation": {"policy": "fixed", "weights": {"human": 0.25, "ai": 0.75}},
        "metrics": [
            {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary"},
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail"},
            {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary"},
            {"key": "touches", "kind": "count", "direction": "decrease", "role": "secondary"},
            {"key": "score", "kind": "continuous", "direction": "increase", "role": "secondary",
             "aggregate": "last"}
        ]
    })
}

fn parse(doc: &Value) -> ExperimentSpec {
    ExperimentSpec::parse(doc).unwrap_or_else(|e| panic!("valid spec rejected: {e}"))
}

/// The normalized document is what the store persists and the API returns; this pins its
/// exact shape (field names, order of keys inside objects is not significant in JSON, but
/// every default must be present with the documented value).
#[test]
fn normalized_document_of_a_minimal_spec_is_pinned() {
    let expected = json!({
        "key": "checkout-ai",
        "name": "checkout-ai",
        "unit": "task",
        "arms": [
            {"key": "human", "role": "baseline"},
            {"key": "ai", "role": "treatment", "description": "AI drafts"}
        ],
        "allocation": {"policy": "fixed", "weights": {"human": 0.25, "ai": 0.75}},
        "coverage": 1.0,
        "targeting": {},
        "metrics": [
            {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary", "aggregate": "mean"},
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail", "aggregate": "mean", "max_harm": 0.0},
            {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary", "aggregate": "sum"},
            {"key": "touches", "kind": "count", "direction": "decrease", "role": "secondary", "aggregate": "sum"},
            {"key": "score", "kind": "continuous", "direction": "increase", "role": "secondary", "aggregate": "last"}
        ],
        "analysis": {
            "alpha": 0.05, "power": 0.8, "mde": 0.05, "sequential": true,
            "sequential_tuning": 5000.0, "correction": "holm", "auto_pause_on_harm": false
        },
        "segments": [],
        "hash_seed": "checkout-ai"
    });
    assert_eq!(parse(&minimal()).to_json(), expected);
}

#[test]
fn normalized_text_keeps_field_and_arm_order() {
    let text = serde_json::to_string(&parse(&minimal())).expect("serializes");
    let order = [
        "\"key\"",
        "\"name\"",
        "\"unit\"",
        "\"arms\"",
        "\"allocation\"",
        "\"coverage\"",
        "\"targeting\"",
        "\"metrics\"",
        "\"analysis\"",
        "\"segments\"",
        "\"hash_seed\"",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|f| {
            text.find(f)
                .unwrap_or_else(|| panic!("{f} missing in {text}"))
        })
        .collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]), "{text}");
    // Weights follow the arms' order, not the alphabet.
    assert!(
        text.contains(r#""weights":{"human":0.25,"ai":0.75}"#),
        "{text}"
    );
}

#[test]
fn optional_sections_get_their_documented_defaults() {
    let mut doc = minimal();
    doc["allocation"] = json!({"policy": "thompson", "reward": "escalated"});
    doc["drift"] = json!({"metrics": ["minutes"]});
    doc["roi"] = json!({"volume_per_month": 1000, "human_cost_per_hour": 40});
    let spec = parse(&doc);
    let normalized = spec.to_json();
    assert_eq!(
        normalized["allocation"],
        json!({"policy": "thompson", "reward": "escalated", "floor": 0.01, "warmup": 100,
               "update_every": 50, "discount": 1.0})
    );
    assert_eq!(
        normalized["drift"],
        json!({"metrics": ["minutes"], "reference_window": 500, "recent_window": 200,
               "page_hinkley": {"delta": 0.1, "lambda": 50.0},
               "cusum": {"slack": 0.25, "threshold": 15.0},
               "window_alpha": 0.001, "auto_rebaseline": false})
    );
    assert_eq!(
        normalized["roi"],
        json!({"volume_per_month": 1000.0, "human_cost_per_hour": 40.0, "fixed_monthly_cost": 0.0,
               "cost_metric": "cost",
               "duration_metric": "minutes", "duration_unit": "minutes", "currency": "USD"})
    );
    let t = spec.allocation().thompson().expect("thompson");
    assert_eq!(
        (t.floor(), t.warmup(), t.update_every(), t.discount()),
        (0.01, 100, 50, 1.0)
    );
}

#[test]
fn fixed_weights_default_to_equal() {
    let mut doc = minimal();
    doc["allocation"] = json!({"policy": "fixed"});
    let spec = parse(&doc);
    match spec.allocation() {
        Allocation::Fixed(f) => assert_eq!(
            f.weights(),
            [("human".to_string(), 0.5), ("ai".to_string(), 0.5)]
        ),
        other => panic!("expected fixed, got {other:?}"),
    }
}

#[test]
fn roi_without_matching_metrics_has_no_metric_defaults() {
    let doc = json!({
        "key": "k",
        "arms": [{"key": "a", "role": "baseline"}, {"key": "b", "role": "treatment"}],
        "allocation": {"policy": "fixed"},
        "metrics": [{"key": "m", "kind": "binary", "direction": "increase", "role": "primary"}],
        "roi": {"volume_per_month": 10, "human_cost_per_hour": 0}
    });
    let roi = parse(&doc).roi().cloned().expect("roi");
    assert_eq!((roi.cost_metric(), roi.duration_metric()), (None, None));
}

#[test]
fn the_normalized_document_round_trips() {
    let mut doc = minimal();
    doc["allocation"] = json!({"policy": "thompson", "reward": "minutes", "floor": 0.1,
                               "warmup": 10, "update_every": 5, "discount": 0.9});
    doc["targeting"] = json!({"region": ["emea", "amer"], "tier": ["gold"]});
    doc["segments"] = json!(["channel"]);
    doc["coverage"] = json!(0.4);
    doc["hash_seed"] = json!("s-1");
    doc["hypothesis"] = json!("faster");
    doc["owner"] = json!("ops");
    let spec = parse(&doc);
    let again = parse(&spec.to_json());
    assert_eq!(again, spec);
    let via_serde: ExperimentSpec =
        serde_json::from_str(&serde_json::to_string(&spec).expect("serializes"))
            .expect("deserializes");
    assert_eq!(via_serde, spec);
}

#[test]
fn deserializing_revalidates() {
    let mut doc = minimal();
    doc["coverage"] = json!(2);
    let err = serde_json::from_value::<ExperimentSpec>(doc).expect_err("invalid coverage");
    assert!(err.to_string().contains("/coverage"), "{err}");
}

#[test]
fn getters_expose_the_validated_parts() {
    let spec = parse(&minimal());
    assert_eq!(spec.key(), "checkout-ai");
    assert_eq!(spec.name(), "checkout-ai");
    assert_eq!(spec.baseline().key(), "human");
    assert_eq!(spec.baseline_index(), 0);
    assert_eq!(spec.treatments().map(Arm::key).collect::<Vec<_>>(), ["ai"]);
    assert_eq!(spec.arm("ai").and_then(Arm::description), Some("AI drafts"));
    assert_eq!(spec.arm_index("ai"), Some(1));
    assert!(spec.arm("robot").is_none());
    assert_eq!(spec.primary().key(), "minutes");
    assert_eq!(
        spec.metric("cost").map(Metric::aggregate),
        Some(Aggregate::Sum)
    );
    assert_eq!(
        spec.metric("score").map(Metric::aggregate),
        Some(Aggregate::Last)
    );
    assert_eq!(spec.allocation().policy(), "fixed");
    assert_eq!(spec.coverage(), 1.0);
    assert_eq!(spec.hash_seed(), "checkout-ai");
    assert_eq!(spec.analysis().correction(), Correction::Holm);
    assert!(spec.drift().is_none() && spec.roi().is_none());
}

#[test]
fn targeting_needs_every_attribute_with_an_allowed_value() {
    let mut doc = minimal();
    doc["targeting"] = json!({"region": ["emea", "amer"], "tier": ["gold"]});
    let spec = parse(&doc);
    let attrs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert!(spec
        .targeting()
        .matches(&attrs(&[("region", "emea"), ("tier", "gold")])));
    assert!(spec
        .targeting()
        .matches(&attrs(&[("region", "amer"), ("tier", "gold"), ("x", "y")])));
    assert!(!spec
        .targeting()
        .matches(&attrs(&[("region", "apac"), ("tier", "gold")])));
    assert!(!spec.targeting().matches(&attrs(&[("region", "emea")])));
    assert!(!spec.targeting().matches(&attrs(&[])));
    assert!(Targeting::default().matches(&attrs(&[])));
}

fn check_value(metric: &str, value: Value, expected: Result<f64, &str>) {
    let spec = parse(&minimal());
    let got = spec.validate_metric_value(metric, &value);
    match (&got, expected) {
        (Ok(x), Ok(y)) => assert_eq!(*x, y, "{metric} {value}"),
        (Err(message), Err(fragment)) => {
            assert!(
                message.contains(fragment),
                "{metric} {value}: {message:?} lacks {fragment:?}"
            );
            assert!(
                !message.ends_with('.'),
                "error messages have no trailing full stop: {message}"
            );
        }
        _ => panic!("{metric} {value}: got {got:?}, expected {expected:?}"),
    }
}

#[test]
fn metric_values_are_checked_by_kind() {
    check_value("escalated", json!(true), Ok(1.0));
    check_value("escalated", json!(false), Ok(0.0));
    check_value("escalated", json!(1), Ok(1.0));
    check_value("escalated", json!(0.0), Ok(0.0));
    check_value("escalated", json!(0.5), Err("binary"));
    check_value("escalated", json!("yes"), Err("binary"));
    check_value("minutes", json!(12.5), Ok(12.5));
    check_value("minutes", json!(0), Ok(0.0));
    check_value("minutes", json!(-1), Err("≥ 0"));
    check_value("minutes", json!(true), Err("number"));
    check_value("cost", json!(-0.01), Err("≥ 0"));
    check_value("cost", json!(3.2), Ok(3.2));
    check_value("touches", json!(3), Ok(3.0));
    check_value("touches", json!(3.5), Err("whole"));
    check_value("touches", json!(-2), Err("whole"));
    check_value("score", json!(-7.25), Ok(-7.25));
    check_value("score", json!(null), Err("number"));
    check_value("score", json!("1"), Err("number"));
    check_value("nope", json!(1), Err("unknown metric"));
}

#[test]
fn text_that_is_not_json_is_one_problem_at_the_root() {
    let err = ExperimentSpec::parse_str("{\"key\": ").expect_err("not JSON");
    assert_eq!(err.pointers(), [""]);
    assert!(ExperimentSpec::parse_str(&minimal().to_string()).is_ok());
}

#[test]
fn problems_display_with_their_pointers() {
    let mut doc = minimal();
    doc["coverage"] = json!(-1);
    doc["key"] = json!("A");
    let err = ExperimentSpec::parse(&doc).expect_err("invalid");
    let text = err.to_string();
    assert!(text.starts_with("2 problems: "), "{text}");
    assert!(
        text.contains("/key: ") && text.contains("/coverage: "),
        "{text}"
    );
}

#[test]
fn slugs() {
    for good in ["a", "0", "support-triage", "a_b-c", &"x".repeat(64)] {
        assert!(is_slug(good), "{good:?} is a slug");
    }
    for bad in ["", "-a", "_a", "A", "a b", "é", "a.b", &"x".repeat(65)] {
        assert!(!is_slug(bad), "{bad:?} is not a slug");
    }
}

#[test]
fn whole_numbers_written_with_a_fraction_part_are_accepted() {
    let mut doc = minimal();
    doc["allocation"] = json!({"policy": "thompson", "reward": "minutes", "warmup": 100.0});
    let spec = parse(&doc);
    assert_eq!(spec.allocation().thompson().map(|t| t.warmup()), Some(100));
}

#[test]
fn floor_is_bounded_by_the_number_of_arms() {
    let mut doc = minimal();
    doc["arms"] = json!([
        {"key": "a", "role": "baseline"}, {"key": "b", "role": "treatment"}, {"key": "c", "role": "treatment"}
    ]);
    doc["allocation"] = json!({"policy": "thompson", "reward": "minutes", "floor": 0.4});
    let err = ExperimentSpec::parse(&doc).expect_err("0.4 × 3 arms > 1");
    assert_eq!(err.pointers(), ["/allocation/floor"]);
    doc["allocation"]["floor"] = json!(1.0 / 3.0);
    assert!(ExperimentSpec::parse(&doc).is_ok());
}

/// The minimal spec with one metric of each new feature: a covariate, a cap, a guardrail
/// tolerance and a ratio (metric 5).
fn featured() -> Value {
    let mut doc = minimal();
    doc["metrics"][0]["covariate"] = json!({"attribute": "estimated_minutes"});
    doc["metrics"][0]["cap"] = json!({"max": 480});
    doc["metrics"][1]["max_harm"] = json!(0.02);
    doc["metrics"]
        .as_array_mut()
        .expect("metrics")
        .push(json!({"key": "cost_per_touch", "kind": "cost", "direction": "decrease",
                     "role": "secondary", "ratio": {"numerator": "cost", "denominator": "touches"}}));
    doc
}

#[test]
fn covariates_ratios_caps_and_harm_tolerances_are_read_and_normalized() {
    let spec = parse(&featured());
    let minutes = spec.metric("minutes").expect("minutes");
    assert_eq!(minutes.covariate(), Some("estimated_minutes"));
    assert_eq!(minutes.cap(), Some(480.0));
    assert_eq!((minutes.capped(500.0), minutes.capped(12.5)), (480.0, 12.5));
    assert!(minutes.ratio().is_none());
    assert_eq!(minutes.max_harm(), 0.0);
    assert_eq!(spec.metric("escalated").map(Metric::max_harm), Some(0.02));
    let ratio = spec
        .metric("cost_per_touch")
        .and_then(Metric::ratio)
        .expect("a ratio");
    assert_eq!(
        (ratio.numerator(), ratio.denominator()),
        ("cost", "touches")
    );
    let cost = spec.metric("cost").expect("cost");
    assert_eq!(
        (cost.covariate(), cost.cap(), cost.capped(1e9)),
        (None, None, 1e9)
    );

    let normalized = spec.to_json();
    assert_eq!(
        normalized["metrics"][0],
        json!({"key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary",
               "aggregate": "mean", "covariate": {"attribute": "estimated_minutes"},
               "cap": {"max": 480.0}})
    );
    // A ratio has no aggregate of its own; only guardrails carry a harm tolerance.
    assert_eq!(
        normalized["metrics"][5],
        json!({"key": "cost_per_touch", "kind": "cost", "direction": "decrease",
               "role": "secondary", "ratio": {"numerator": "cost", "denominator": "touches"}})
    );
    assert_eq!(parse(&normalized), spec);
}

#[test]
fn ratio_metrics_take_no_values_in_outcomes() {
    let spec = parse(&featured());
    let err = spec
        .validate_metric_value("cost_per_touch", &json!(2.5))
        .expect_err("a ratio takes no values");
    assert!(
        err.contains("\"cost\"") && err.contains("\"touches\"") && !err.ends_with('.'),
        "{err}"
    );
    // A value above a cap is accepted as reported; folding cuts it.
    assert_eq!(
        spec.validate_metric_value("minutes", &json!(900)),
        Ok(900.0)
    );
}

#[test]
fn roi_defaults_skip_ratio_metrics() {
    let mut doc = featured();
    // The ratio comes first among the cost metrics, yet cost per case is the reported one.
    let ratio = doc["metrics"].as_array_mut().expect("metrics").remove(5);
    doc["metrics"]
        .as_array_mut()
        .expect("metrics")
        .insert(1, ratio);
    doc["roi"] = json!({"volume_per_month": 100, "human_cost_per_hour": 30,
                        "fixed_monthly_cost": 1200.5});
    let spec = parse(&doc);
    let roi = spec.roi().expect("roi");
    assert_eq!(roi.cost_metric(), Some("cost"));
    assert_eq!(roi.fixed_monthly_cost(), 1200.5);
}

/// Applies `edit` to the featured spec and checks that parsing fails with exactly these
/// pointers, each message containing its fragment.
fn check_problems(edit: impl FnOnce(&mut Value), expected: &[(&str, &str)]) {
    let mut doc = featured();
    edit(&mut doc);
    let err = ExperimentSpec::parse(&doc).expect_err("an invalid spec");
    let got: Vec<(&str, &str)> = err
        .problems
        .iter()
        .map(|p| (p.pointer.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(
        got.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        expected.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        "{got:?}"
    );
    for ((_, message), (_, fragment)) in got.iter().zip(expected) {
        assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
    }
}

#[test]
fn covariate_problems_are_located() {
    check_problems(
        |d| d["metrics"][0]["covariate"] = json!("estimated_minutes"),
        &[("/metrics/0/covariate", "must be an object")],
    );
    check_problems(
        |d| d["metrics"][0]["covariate"] = json!({"attribute": ""}),
        &[("/metrics/0/covariate/attribute", "attribute name")],
    );
    check_problems(
        |d| d["metrics"][0]["covariate"] = json!({}),
        &[("/metrics/0/covariate/attribute", "is required")],
    );
    check_problems(
        |d| d["metrics"][0]["covariate"] = json!({"attribute": "x", "scale": 2}),
        &[("/metrics/0/covariate/scale", "unknown field")],
    );
    check_problems(
        |d| d["metrics"][5]["covariate"] = json!({"attribute": "x"}),
        &[(
            "/metrics/5/covariate",
            "ratio metric cannot have a covariate",
        )],
    );
}

#[test]
fn ratio_problems_are_located() {
    check_problems(
        |d| d["metrics"][5]["ratio"]["denominator"] = json!("resolved"),
        &[(
            "/metrics/5/ratio/denominator",
            "\"resolved\" is not a declared metric",
        )],
    );
    check_problems(
        |d| {
            d["metrics"][5]["ratio"] = json!({"numerator": "cost_per_touch", "denominator": "nope"})
        },
        &[
            ("/metrics/5/ratio/numerator", "itself"),
            (
                "/metrics/5/ratio/denominator",
                "\"nope\" is not a declared metric",
            ),
        ],
    );
    check_problems(
        |d| {
            d["metrics"][4]["ratio"] =
                json!({"numerator": "cost_per_touch", "denominator": "cost"});
            d["metrics"][4]
                .as_object_mut()
                .expect("metric")
                .remove("aggregate");
        },
        &[("/metrics/4/ratio/numerator", "is a ratio metric")],
    );
    check_problems(
        |d| d["metrics"][5]["ratio"] = json!({"numerator": "cost"}),
        &[("/metrics/5/ratio/denominator", "is required")],
    );
    check_problems(
        |d| d["metrics"][5]["kind"] = json!("binary"),
        &[("/metrics/5/kind", "cannot be binary")],
    );
    check_problems(
        |d| d["metrics"][5]["aggregate"] = json!("sum"),
        &[("/metrics/5/aggregate", "no events of its own")],
    );
    check_problems(
        |d| d["metrics"][5]["cap"] = json!({"max": 3}),
        &[("/metrics/5/cap", "cap its numerator or denominator")],
    );
    check_problems(
        |d| d["allocation"] = json!({"policy": "thompson", "reward": "cost_per_touch"}),
        &[("/allocation/reward", "ratio metric")],
    );
    check_problems(
        |d| d["drift"] = json!({"metrics": ["minutes", "cost_per_touch"]}),
        &[("/drift/metrics/1", "ratio metric")],
    );
    check_problems(
        |d| {
            d["roi"] = json!({"volume_per_month": 1, "human_cost_per_hour": 1,
                              "cost_metric": "cost_per_touch"})
        },
        &[("/roi/cost_metric", "ratio metric")],
    );
}

#[test]
fn cap_problems_are_located() {
    check_problems(
        |d| d["metrics"][0]["cap"] = json!({"max": -5}),
        &[("/metrics/0/cap/max", "must be > 0, got -5")],
    );
    check_problems(
        |d| d["metrics"][0]["cap"] = json!({"max": 0}),
        &[("/metrics/0/cap/max", "must be > 0")],
    );
    check_problems(
        |d| d["metrics"][0]["cap"] = json!(480),
        &[("/metrics/0/cap", "must be an object")],
    );
    check_problems(
        |d| d["metrics"][1]["cap"] = json!({"max": 1}),
        &[("/metrics/1/cap", "binary metric cannot be capped")],
    );
    check_problems(
        |d| d["metrics"][3]["cap"] = json!({"max": 2.5}),
        &[("/metrics/3/cap/max", "whole number")],
    );
}

#[test]
fn harm_tolerance_problems_are_located() {
    check_problems(
        |d| d["metrics"][2]["max_harm"] = json!(0.1),
        &[("/metrics/2/max_harm", "only a guardrail")],
    );
    check_problems(
        |d| d["metrics"][1]["max_harm"] = json!(1),
        &[("/metrics/1/max_harm", "in [0, 1)")],
    );
    check_problems(
        |d| d["metrics"][1]["max_harm"] = json!(-0.01),
        &[("/metrics/1/max_harm", "in [0, 1)")],
    );
}

#[test]
fn a_fixed_horizon_analysis_states_its_planned_units() {
    check_problems(
        |d| d["analysis"] = json!({"sequential": false}),
        &[(
            "/analysis/planned_units",
            "is required when sequential is false",
        )],
    );
    check_problems(
        |d| d["analysis"] = json!({"sequential": false, "planned_units": 0}),
        &[("/analysis/planned_units", "whole number")],
    );
    check_problems(
        |d| {
            d["roi"] =
                json!({"volume_per_month": 1, "human_cost_per_hour": 1, "fixed_monthly_cost": -1})
        },
        &[("/roi/fixed_monthly_cost", "≥ 0")],
    );
    let mut doc = minimal();
    doc["analysis"] = json!({"sequential": false, "planned_units": 8000});
    let analysis = parse(&doc).analysis().clone();
    assert_eq!(
        (analysis.sequential(), analysis.planned_units()),
        (false, Some(8000))
    );
    let defaults = parse(&minimal()).analysis().clone();
    assert_eq!(
        (defaults.sequential(), defaults.planned_units()),
        (true, None)
    );
}

/// Specs stored before `planned_units` existed say `"sequential": false` without it: reading
/// them back upgrades them to sequential, while the API's parser rejects the same document.
#[test]
fn stored_fixed_horizon_specs_without_planned_units_are_read_as_sequential() {
    let mut stored = parse(&minimal()).to_json();
    stored["analysis"]["sequential"] = json!(false);
    assert!(ExperimentSpec::parse(&stored).is_err());
    let read: ExperimentSpec = serde_json::from_value(stored.clone()).expect("upgraded");
    assert!(read.analysis().sequential());
    assert_eq!(read.analysis().planned_units(), None);
    // Everything else is read as stored.
    let mut expected = stored.clone();
    expected["analysis"]["sequential"] = json!(true);
    assert_eq!(read.to_json(), expected);

    // A fixed-horizon spec that states its planned units stays fixed-horizon.
    stored["analysis"]["planned_units"] = json!(5000);
    let read: ExperimentSpec = serde_json::from_value(stored).expect("valid");
    assert!(!read.analysis().sequential());
    assert_eq!(read.analysis().planned_units(), Some(5000));
}
