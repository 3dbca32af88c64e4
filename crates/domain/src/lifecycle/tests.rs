//! Tests of the lifecycle: the full transition table and the version records.

use serde_json::json;

use super::*;

const ALL_STATUSES: [Status; 4] = [
    Status::Draft,
    Status::Running,
    Status::Paused,
    Status::Stopped,
];
const ALL_TRANSITIONS: [Transition; 3] = [Transition::Start, Transition::Pause, Transition::Stop];

#[test]
fn transition_table() {
    use Status::*;
    // The design's state machine: draft → running ⇄ paused → stopped.
    let allowed = [
        (Draft, Transition::Start, Running),
        (Running, Transition::Pause, Paused),
        (Paused, Transition::Start, Running),
        (Running, Transition::Stop, Stopped),
        (Paused, Transition::Stop, Stopped),
    ];
    for from in ALL_STATUSES {
        for t in ALL_TRANSITIONS {
            let expected = allowed
                .iter()
                .find(|(f, tr, _)| *f == from && *tr == t)
                .map(|(_, _, to)| *to);
            match (transition(from, t), expected) {
                (Ok(to), Some(want)) => assert_eq!(to, want, "{from} {t}"),
                (
                    Err(DomainError::Transition {
                        from: f,
                        transition: tr,
                        to,
                    }),
                    None,
                ) => {
                    assert_eq!((f, tr, to), (from, t, t.target()));
                }
                (got, want) => panic!("{from} {t}: got {got:?}, expected {want:?}"),
            }
        }
    }
}

#[test]
fn a_refused_transition_names_both_ends() {
    let err = transition(Status::Stopped, Transition::Start).expect_err("stopped is final");
    assert_eq!(
        err.to_string(),
        "cannot start an experiment that is stopped (stopped → running is not allowed)"
    );
    let err = transition(Status::Draft, Transition::Pause).expect_err("a draft cannot pause");
    assert!(err.to_string().contains("draft → paused"), "{err}");
}

fn spec(weights: (f64, f64), seed: &str) -> ExperimentSpec {
    ExperimentSpec::parse(&json!({
        "key": "exp",
        "arms": [{"key": "a", "role": "baseline"}, {"key": "b", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"a": weights.0, "b": weights.1}},
        "metrics": [{"key": "m", "kind": "binary", "direction": "increase", "role": "primary"}],
        "hash_seed": seed
    }))
    .expect("valid")
}

#[test]
fn versions_count_up_and_record_the_change() {
    let v1 = ExperimentVersion::created(spec((0.5, 0.5), "s"), 10);
    assert_eq!(
        (v1.version, v1.status, v1.created_at),
        (1, Status::Draft, 10)
    );
    assert_eq!(v1.change, Change::Created);
    let v2 = v1
        .transitioned(Transition::Start, None, 20)
        .expect("start a draft");
    assert_eq!((v2.version, v2.status), (2, Status::Running));
    assert_eq!(v2.change, Change::Status(Transition::Start));
    let v3 = v2
        .transitioned(Transition::Pause, Some("guardrail harm".into()), 30)
        .expect("pause");
    assert_eq!(v3.reason.as_deref(), Some("guardrail harm"));
    let v4 = v3
        .updated(spec((0.2, 0.8), "s"), None, 40)
        .expect("weights may change");
    assert_eq!(
        (v4.version, v4.status, v4.change.clone()),
        (4, Status::Paused, Change::SpecUpdated)
    );
    let v5 = v4.rebaselined(1, Some("drift".into()), 50);
    assert_eq!(
        (v5.version, v5.status, v5.change.clone()),
        (5, Status::Paused, Change::Rebaselined { epoch: 1 })
    );
    // Earlier versions are untouched values.
    assert_eq!(v1.status, Status::Draft);
    assert!(v3.transitioned(Transition::Pause, None, 60).is_err());
}

#[test]
fn started_experiments_keep_their_arms_seed_and_policy() {
    let draft = ExperimentVersion::created(spec((0.5, 0.5), "s"), 0);
    assert!(
        draft.updated(spec((0.5, 0.5), "other"), None, 1).is_ok(),
        "a draft can change anything"
    );
    let running = draft
        .transitioned(Transition::Start, None, 1)
        .expect("start");
    assert_eq!(
        running.updated(spec((0.5, 0.5), "other"), None, 2),
        Err(DomainError::FrozenField {
            what: "the hash seed",
            status: Status::Running
        })
    );
    let stopped = running
        .transitioned(Transition::Stop, None, 3)
        .expect("stop");
    assert!(matches!(
        stopped.updated(spec((0.5, 0.5), "s"), None, 4),
        Err(DomainError::FrozenField {
            status: Status::Stopped,
            ..
        })
    ));
    let other_key = ExperimentSpec::parse(&json!({
        "key": "other",
        "arms": [{"key": "a", "role": "baseline"}, {"key": "b", "role": "treatment"}],
        "allocation": {"policy": "fixed"},
        "metrics": [{"key": "m", "kind": "binary", "direction": "increase", "role": "primary"}]
    }))
    .expect("valid");
    assert!(matches!(
        draft.updated(other_key, None, 5),
        Err(DomainError::KeyMismatch { .. })
    ));
}

fn paired_spec(minutes: serde_json::Value, extra: Option<serde_json::Value>) -> ExperimentSpec {
    let mut metrics = vec![
        json!({"key": "m", "kind": "binary", "direction": "increase", "role": "primary"}),
        minutes,
        json!({"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary"}),
    ];
    metrics.extend(extra);
    ExperimentSpec::parse(&json!({
        "key": "exp",
        "arms": [{"key": "a", "role": "baseline"}, {"key": "b", "role": "treatment"}],
        "allocation": {"policy": "fixed"},
        "metrics": metrics
    }))
    .expect("valid")
}

#[test]
fn started_experiments_keep_their_metric_pairs() {
    let minutes = |covariate: Option<&str>| {
        let mut m = json!({"key": "minutes", "kind": "duration", "direction": "decrease", "role": "secondary"});
        if let Some(c) = covariate {
            m["covariate"] = json!({"attribute": c});
        }
        m
    };
    let ratio = |denominator: &str| {
        json!({"key": "per", "kind": "cost", "direction": "decrease", "role": "secondary",
               "ratio": {"numerator": "cost", "denominator": denominator}})
    };
    let frozen = Err(DomainError::FrozenField {
        what: "the covariates and ratios of the metrics",
        status: Status::Running,
    });
    let start = |spec| {
        ExperimentVersion::created(spec, 0)
            .transitioned(Transition::Start, None, 1)
            .expect("start")
    };
    let plain = start(paired_spec(minutes(None), None));
    assert_eq!(
        plain
            .updated(paired_spec(minutes(Some("estimate")), None), None, 2)
            .map(|_| ()),
        frozen,
        "a covariate added to a metric with values"
    );
    assert_eq!(
        plain
            .updated(paired_spec(minutes(None), Some(ratio("minutes"))), None, 2)
            .map(|_| ()),
        frozen,
        "a ratio added over metrics with values"
    );
    let paired = start(paired_spec(
        minutes(Some("estimate")),
        Some(ratio("minutes")),
    ));
    for (change, spec) in [
        (
            "another covariate",
            paired_spec(minutes(Some("size")), Some(ratio("minutes"))),
        ),
        (
            "no covariate",
            paired_spec(minutes(None), Some(ratio("minutes"))),
        ),
        (
            "another denominator",
            paired_spec(minutes(Some("estimate")), Some(ratio("m"))),
        ),
    ] {
        assert_eq!(
            paired.updated(spec, None, 2).map(|_| ()),
            frozen,
            "{change}"
        );
    }
    // The same pairs, or a ratio removed, are fine; a draft may change anything.
    assert!(paired
        .updated(
            paired_spec(minutes(Some("estimate")), Some(ratio("minutes"))),
            None,
            2
        )
        .is_ok());
    assert!(paired
        .updated(paired_spec(minutes(Some("estimate")), None), None, 2)
        .is_ok());
    assert!(
        ExperimentVersion::created(paired_spec(minutes(None), None), 0)
            .updated(
                paired_spec(minutes(Some("estimate")), Some(ratio("m"))),
                None,
                1
            )
            .is_ok()
    );
}

#[test]
fn versions_serialize_and_revalidate_their_spec() {
    let v = ExperimentVersion::created(spec((0.5, 0.5), "s"), 7)
        .transitioned(Transition::Start, Some("launch".into()), 8)
        .expect("start");
    let text = serde_json::to_string(&v).expect("serializes");
    let back: ExperimentVersion = serde_json::from_str(&text).expect("deserializes");
    assert_eq!(back, v);
    let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(doc["change"], json!({"status": "start"}));
    assert_eq!(doc["status"], json!("running"));
    let mut broken = doc.clone();
    broken["spec"]["coverage"] = json!(7);
    assert!(serde_json::from_value::<ExperimentVersion>(broken).is_err());
}
