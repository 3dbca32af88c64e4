//! Tests of assignment decisions and request validation.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::hash::{bucket_ranges, choose, hash_v2};

fn spec_with(extra: Value) -> ExperimentSpec {
    let mut doc = json!({
        "key": "exp",
        "arms": [
            {"key": "human", "role": "baseline"},
            {"key": "ai", "role": "treatment"},
            {"key": "ai-plus", "role": "treatment"}
        ],
        "allocation": {"policy": "fixed", "weights": {"human": 0.2, "ai": 0.3, "ai-plus": 0.5}},
        "metrics": [{"key": "m", "kind": "binary", "direction": "increase", "role": "primary"}],
        "hash_seed": "seed",
        "segments": ["channel"]
    });
    for (k, v) in extra.as_object().expect("object").clone() {
        doc[k] = v;
    }
    ExperimentSpec::parse(&doc).unwrap_or_else(|e| panic!("{e}"))
}

fn request(unit: &str, attrs: &[(&str, &str)]) -> AssignRequest {
    AssignRequest::new(
        unit,
        None,
        attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .expect("valid request")
}

fn run(spec: &ExperimentSpec, status: Status, req: &AssignRequest) -> Assignment {
    let period = initial_period(spec, 0);
    decide(spec, status, 3, 1, &period, req, "as-1".into(), 1_000)
}

#[test]
fn in_experiment_units_follow_growthbook_buckets() {
    let spec = spec_with(json!({}));
    let weights = [0.2, 0.3, 0.5];
    for i in 0..500 {
        let unit = format!("unit-{i}");
        let a = run(&spec, Status::Running, &request(&unit, &[]));
        let expected =
            choose(hash_v2("seed", &unit), &bucket_ranges(&weights, 1.0)).expect("full coverage");
        assert!(a.in_experiment);
        assert_eq!(a.arm, spec.arms()[expected].key(), "{unit}");
        assert_eq!(a.propensity, weights[expected]);
    }
}

#[test]
fn published_hash_vectors_pick_the_expected_arms() {
    // GrowthBook vectors: hash_v2("seed", "a") = 0.0505 and hash_v2("seed", "b") = 0.2696.
    let spec = spec_with(json!({}));
    // Ranges [0, 0.2) [0.2, 0.5) [0.5, 1): 0.0505 → human, 0.2696 → ai.
    assert_eq!(run(&spec, Status::Running, &request("a", &[])).arm, "human");
    assert_eq!(run(&spec, Status::Running, &request("b", &[])).arm, "ai");
    // With coverage 0.2 the ranges are [0, 0.04) [0.2, 0.26) [0.5, 0.6): both fall outside.
    let narrow = spec_with(json!({"coverage": 0.2}));
    for unit in ["a", "b"] {
        let a = run(&narrow, Status::Running, &request(unit, &[]));
        assert!(!a.in_experiment, "{unit}");
        assert_eq!((a.arm.as_str(), a.propensity), ("human", 1.0));
    }
}

#[test]
fn not_running_means_baseline_outside_the_experiment() {
    let spec = spec_with(json!({}));
    for status in [Status::Draft, Status::Paused, Status::Stopped] {
        let a = run(&spec, status, &request("b", &[]));
        assert_eq!(
            (a.arm.as_str(), a.in_experiment, a.propensity),
            ("human", false, 1.0),
            "{status}"
        );
    }
}

#[test]
fn untargeted_units_get_the_baseline() {
    let spec = spec_with(json!({"targeting": {"region": ["emea"]}}));
    for attrs in [&[][..], &[("region", "apac")][..]] {
        let a = run(&spec, Status::Running, &request("b", attrs));
        assert_eq!(
            (a.arm.as_str(), a.in_experiment),
            ("human", false),
            "{attrs:?}"
        );
    }
    let a = run(&spec, Status::Running, &request("b", &[("region", "emea")]));
    assert_eq!((a.arm.as_str(), a.in_experiment), ("ai", true));
}

#[test]
fn the_assignment_carries_its_context() {
    let spec = spec_with(json!({}));
    let req = AssignRequest::new(
        "u1",
        Some("ticket-9".into()),
        BTreeMap::from([
            ("channel".to_string(), "email".to_string()),
            ("other".to_string(), "x".to_string()),
        ]),
    )
    .expect("valid");
    let period = AllocationPeriod {
        period: 4,
        ..initial_period(&spec, 0)
    };
    let a = decide(
        &spec,
        Status::Running,
        7,
        2,
        &period,
        &req,
        "id-1".into(),
        99,
    );
    assert_eq!(a.experiment, "exp");
    assert_eq!((a.unit_id.as_str(), a.task_id.as_str()), ("u1", "ticket-9"));
    assert_eq!((a.version, a.epoch, a.period, a.assigned_at), (7, 2, 4, 99));
    assert_eq!(a.assignment_id, "id-1");
    // Only declared segment attributes are kept.
    assert_eq!(
        a.segments,
        BTreeMap::from([("channel".to_string(), "email".to_string())])
    );
    assert_eq!(request("u2", &[]).task_id(), "u2");
}

#[test]
fn thompson_assigns_by_the_current_period() {
    let spec = spec_with(json!({"allocation": {"policy": "thompson", "reward": "m"}}));
    let start = initial_period(&spec, 5);
    assert_eq!(start.period, 0);
    assert_eq!(start.opened_at, 5);
    assert!(start
        .weights
        .iter()
        .all(|(_, w)| (w - 1.0 / 3.0).abs() < 1e-15));
    let skewed = AllocationPeriod {
        period: 3,
        weights: vec![
            ("human".into(), 0.0),
            ("ai".into(), 0.0),
            ("ai-plus".into(), 1.0),
        ],
        ..start
    };
    for i in 0..50 {
        let a = decide(
            &spec,
            Status::Running,
            1,
            0,
            &skewed,
            &request(&format!("u{i}"), &[]),
            String::new(),
            0,
        );
        assert_eq!(
            (a.arm.as_str(), a.propensity, a.period),
            ("ai-plus", 1.0, 3)
        );
    }
}

#[test]
fn a_stale_period_falls_back_to_the_spec_weights() {
    let spec = spec_with(json!({}));
    let stale = AllocationPeriod {
        weights: vec![("x".into(), 0.5), ("y".into(), 0.5)],
        ..initial_period(&spec, 0)
    };
    for unit in ["a", "b", "c"] {
        let fresh = run(&spec, Status::Running, &request(unit, &[]));
        let a = decide(
            &spec,
            Status::Running,
            3,
            1,
            &stale,
            &request(unit, &[]),
            "as-1".into(),
            1_000,
        );
        assert_eq!(a, fresh, "{unit}");
    }
}

/// The 99.9th percentile of the chi-square distribution with 2 degrees of freedom.
const CHI2_2DF_999: f64 = 13.815_510_557_964_274;

#[test]
fn assignment_frequencies_match_the_weights() {
    let spec = spec_with(json!({"coverage": 0.8}));
    let n = 30_000;
    let mut counts = [0u64; 3];
    let mut outside = 0u64;
    for i in 0..n {
        let a = run(
            &spec,
            Status::Running,
            &request(&format!("customer-{i:06}"), &[]),
        );
        match spec.arm_index(&a.arm) {
            Some(k) if a.in_experiment => counts[k] += 1,
            _ => outside += 1,
        }
    }
    let inside: u64 = counts.iter().sum();
    let chi2: f64 = counts
        .iter()
        .zip([0.2, 0.3, 0.5])
        .map(|(&c, w)| {
            let expected = w * crate::count_f64_u64(inside);
            (crate::count_f64_u64(c) - expected).powi(2) / expected
        })
        .sum();
    assert!(chi2 < CHI2_2DF_999, "counts {counts:?} give chi2 {chi2}");
    // Coverage: about 80% enter; a binomial 4-sigma band.
    let share = crate::count_f64_u64(inside) / crate::count_f64_u64(n);
    let sigma = (0.8 * 0.2 / crate::count_f64_u64(n)).sqrt();
    assert!(
        (share - 0.8).abs() < 4.0 * sigma,
        "share in experiment {share}, outside {outside}"
    );
}

#[test]
fn numbers_sent_as_attributes_are_kept_as_their_json_text() {
    let req = AssignRequest::parse(&json!({
        "unit_id": "u1",
        "attributes": {"estimated_minutes": 42.5, "pages": 3, "tiny": 1e-7, "channel": "chat"}
    }))
    .expect("numbers are attribute values");
    let text = |k: &str| req.attributes().get(k).map(String::as_str);
    assert_eq!(
        (text("estimated_minutes"), text("pages"), text("channel")),
        (Some("42.5"), Some("3"), Some("chat"))
    );
    assert_eq!(text("tiny").and_then(covariate_number), Some(1e-7));
    for bad in [json!(null), json!(true), json!([1]), json!({"v": 1})] {
        let err = AssignRequest::parse(&json!({"unit_id": "u1", "attributes": {"x": bad}}))
            .expect_err("not a string or a number");
        assert_eq!(err.pointers(), ["/attributes/x"]);
    }
}

fn covariate_spec() -> ExperimentSpec {
    spec_with(json!({"metrics": [
        {"key": "m", "kind": "binary", "direction": "increase", "role": "primary"},
        {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "secondary",
         "covariate": {"attribute": "estimate"}},
        {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary",
         "covariate": {"attribute": "estimate"}}
    ]}))
}

#[test]
fn the_assignment_keeps_segment_and_covariate_attributes() {
    let spec = covariate_spec();
    let req = request(
        "u1",
        &[("channel", "chat"), ("estimate", "17.25"), ("other", "x")],
    );
    let a = run(&spec, Status::Running, &req);
    assert_eq!(
        a.segments,
        BTreeMap::from([
            ("channel".to_string(), "chat".to_string()),
            ("estimate".to_string(), "17.25".to_string()),
        ])
    );
    assert_eq!(
        a.segments.get("estimate").and_then(|v| covariate_number(v)),
        Some(17.25)
    );
}

#[test]
fn covariates_sent_at_assignment_must_be_numbers() {
    let spec = covariate_spec();
    for fine in [&[("estimate", "12")][..], &[("estimate", " 3.5e1 ")], &[]] {
        assert_eq!(
            request("u1", fine).check_covariates(&spec),
            Ok(()),
            "{fine:?}"
        );
    }
    for bad in ["high", "", "NaN", "inf", "1e999"] {
        let err = request("u1", &[("estimate", bad), ("channel", "chat")])
            .check_covariates(&spec)
            .expect_err("not a number");
        // One problem, though two metrics use the attribute.
        assert_eq!(err.pointers(), ["/attributes/estimate"], "{bad:?}");
        assert!(
            err.problems[0].message.contains("must be a number"),
            "{err}"
        );
    }
    // A spec without covariates checks nothing.
    assert_eq!(
        request("u1", &[("estimate", "high")]).check_covariates(&spec_with(json!({}))),
        Ok(())
    );
}

#[test]
fn request_validation_reports_every_problem_with_pointers() {
    let long = "x".repeat(257);
    let err = AssignRequest::parse(&json!({
        "unit_id": "",
        "task_id": long,
        "attributes": {"tier": true, "region": "emea"},
        "arm": "ai"
    }))
    .expect_err("invalid");
    let mut pointers = err.pointers();
    pointers.sort_unstable();
    assert_eq!(
        pointers,
        ["/arm", "/attributes/tier", "/task_id", "/unit_id"]
    );

    assert_eq!(
        AssignRequest::parse(&json!({}))
            .expect_err("missing")
            .pointers(),
        ["/unit_id"]
    );
    assert_eq!(
        AssignRequest::parse(&json!("u1"))
            .expect_err("not an object")
            .pointers(),
        [""]
    );
    assert_eq!(
        AssignRequest::parse(&json!({"unit_id": "u", "attributes": ["a"]}))
            .expect_err("attributes must be an object")
            .pointers(),
        ["/attributes"]
    );
    assert_eq!(
        AssignRequest::parse(&json!({"unit_id": 5}))
            .expect_err("wrong type")
            .pointers(),
        ["/unit_id"]
    );
    let ok =
        AssignRequest::parse(&json!({"unit_id": "u1", "task_id": null, "attributes": {"a": "b"}}))
            .expect("valid");
    assert_eq!((ok.unit_id(), ok.task_id()), ("u1", "u1"));
    assert_eq!(ok.attributes().get("a").map(String::as_str), Some("b"));
    // 256 characters (not bytes) is the limit.
    assert!(AssignRequest::new("é".repeat(256), None, BTreeMap::new()).is_ok());
    assert_eq!(
        AssignRequest::new("é".repeat(257), None, BTreeMap::new())
            .expect_err("too long")
            .pointers(),
        ["/unit_id"]
    );
    assert_eq!(
        AssignRequest::new("u", Some(String::new()), BTreeMap::new())
            .expect_err("empty")
            .pointers(),
        ["/task_id"]
    );
    let many: BTreeMap<String, String> = (0..65)
        .map(|i| (format!("a{i}"), "v".to_string()))
        .collect();
    assert_eq!(
        AssignRequest::new("u", None, many)
            .expect_err("too many")
            .pointers(),
        ["/attributes"]
    );
}

proptest! {
    #[test]
    fn lowering_coverage_never_moves_an_assigned_unit(
        unit in "[a-zA-Z0-9-]{1,40}",
        high in 0.0f64..=1.0,
        factor in 0.0f64..=1.0,
    ) {
        let low_spec = spec_with(json!({"coverage": high * factor}));
        let high_spec = spec_with(json!({"coverage": high}));
        let req = request(&unit, &[]);
        let low = run(&low_spec, Status::Running, &req);
        let high = run(&high_spec, Status::Running, &req);
        if low.in_experiment {
            prop_assert!(high.in_experiment);
            prop_assert_eq!(low.arm, high.arm);
        }
    }

    #[test]
    fn decisions_are_deterministic(unit in ".{1,64}") {
        let spec = spec_with(json!({"coverage": 0.7}));
        let req = request(&unit, &[]);
        prop_assert_eq!(run(&spec, Status::Running, &req), run(&spec, Status::Running, &req));
    }
}

/// Every answer outside the experiment says why, and the reason of the served answer is the
/// decision's own: not running before targeting, targeting before coverage.
#[test]
fn every_answer_outside_says_why() {
    let spec = spec_with(json!({"coverage": 0.5, "targeting": {"region": ["emea"]}}));
    let period = initial_period(&spec, 0);
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..200 {
        let unit = format!("unit-{i}");
        for status in [
            Status::Draft,
            Status::Running,
            Status::Paused,
            Status::Stopped,
        ] {
            for region in ["emea", "apac"] {
                let req = request(&unit, &[("region", region)]);
                let decision = choose_arm(&spec, status, &period, &unit, req.attributes());
                let expected = if status != Status::Running {
                    Some(OutReason::NotRunning)
                } else if region != "emea" {
                    Some(OutReason::NotTargeted)
                } else if choose(
                    hash_v2("seed", &unit),
                    &bucket_ranges(&[0.2, 0.3, 0.5], 0.5),
                )
                .is_none()
                {
                    Some(OutReason::OutsideCoverage)
                } else {
                    None
                };
                assert_eq!(decision.reason, expected, "{unit} {status} {region}");
                assert_eq!(decision.in_experiment, expected.is_none());
                let answer = run(&spec, status, &req);
                assert_eq!(out_reason(&spec, status, &answer, &req), expected);
                seen.insert(expected);
            }
        }
    }
    assert_eq!(
        seen.len(),
        4,
        "every reason and in-experiment occur: {seen:?}"
    );
}

/// A returning unit keeps its first answer; its reason is judged on the current request.
#[test]
fn a_stored_answer_outside_is_judged_on_the_current_request() {
    let spec = spec_with(json!({"targeting": {"region": ["emea"]}}));
    let first = run(&spec, Status::Running, &request("b", &[("region", "apac")]));
    assert!(!first.in_experiment);
    let now = request("b", &[("region", "emea")]);
    let again = request("b", &[("region", "apac")]);
    assert_eq!(
        out_reason(&spec, Status::Running, &first, &again),
        Some(OutReason::NotTargeted)
    );
    assert_eq!(
        out_reason(&spec, Status::Running, &first, &now),
        Some(OutReason::OutsideCoverage)
    );
    assert_eq!(
        out_reason(&spec, Status::Paused, &first, &now),
        Some(OutReason::NotRunning)
    );
    let inside = run(&spec, Status::Running, &now);
    assert_eq!(out_reason(&spec, Status::Running, &inside, &now), None);
}
