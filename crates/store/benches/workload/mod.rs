//! The store workload shared by the criterion benches (`benches/store.rs`) and the CPU-time
//! probe (`examples/store_cpu_time.rs`): one spec, and the assignments and outcomes both write.

use std::collections::BTreeMap;

use liftlab_domain::{Assignment, ExperimentSpec, HandledBy, Outcome, Transition};
use liftlab_store::Store;
use serde_json::json;

/// A two-arm spec with three metrics (binary primary, duration guardrail, cost) and a segment.
pub fn spec(key: &str) -> ExperimentSpec {
    ExperimentSpec::parse(&json!({
        "key": key,
        "arms": [{"key": "human", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai": 0.5}},
        "metrics": [
            {"key": "resolved", "kind": "binary", "direction": "increase", "role": "primary"},
            {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "guardrail"},
            {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary"}
        ],
        "segments": ["region"]
    }))
    .expect("the workload spec is valid")
}

/// The arm unit `n` is served: alternating.
pub fn arm(n: u64) -> &'static str {
    if n % 2 == 0 {
        "ai"
    } else {
        "human"
    }
}

/// Unit `n`'s assignment (task `task-n`, segment `region`).
pub fn assignment(exp: &str, n: u64) -> Assignment {
    Assignment {
        experiment: exp.to_string(),
        unit_id: format!("unit-{n}"),
        task_id: format!("task-{n}"),
        arm: arm(n).to_string(),
        in_experiment: true,
        version: 2,
        assignment_id: format!("as-{n}"),
        propensity: 0.5,
        period: 0,
        epoch: 0,
        segments: BTreeMap::from([(
            "region".to_string(),
            if n % 3 == 0 { "eu" } else { "us" }.to_string(),
        )]),
        assigned_at: 1_700_000_000_000,
    }
}

/// Event `event` of unit `unit`, with all three metrics.
pub fn outcome(exp: &str, unit: u64, event: u64) -> Outcome {
    Outcome {
        event_id: format!("ev-{event}"),
        experiment: exp.to_string(),
        task_id: format!("task-{unit}"),
        unit_id: format!("unit-{unit}"),
        arm: arm(unit).to_string(),
        epoch: 0,
        ts: 1_700_000_000_000 + i64::try_from(event % 1_000_000).expect("small"),
        metrics: BTreeMap::from([
            ("resolved".to_string(), f64::from(u8::from(event % 3 != 0))),
            (
                "minutes".to_string(),
                3.0 + f64::from(u32::try_from(event % 17).expect("small")),
            ),
            ("cost".to_string(), 0.25),
        ]),
        handled_by: Some(HandledBy::Ai),
        model_version: Some("m-1".to_string()),
        attributes: BTreeMap::new(),
    }
}

/// A running experiment `key` in `store`.
pub fn running(store: &dyn Store, key: &str) {
    store.create_experiment(spec(key), 1).expect("created");
    store
        .transition(key, Transition::Start, None, 2)
        .expect("started");
}
