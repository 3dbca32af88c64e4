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
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail", "aggregate": "mean"},
            {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary", "aggregate": "sum"},
            {"key": "touches", "kind": "count", "direction": "decrease", "role": "secondary", "aggregate": "sum"},
            {"key": "score", "kind": "continuous", "direction": "increase", "role": "secondary", "aggregate": "last"}
        ],
        "analysis": {
            "alpha": 0.05, "power": 0.8, "mde": 0.05, "sequential": false,
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
        json!({"volume_per_month": 1000.0, "human_cost_per_hour": 40.0, "cost_metric": "cost",
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
