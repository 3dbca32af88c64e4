//! The assignment workload shared by the criterion benches (`benches/assign.rs`) and the
//! CPU-time probe (`examples/domain_cpu_time.rs`): a 4-arm spec and a set of requests.

use liftlab_domain::assign::AssignRequest;
use liftlab_domain::ExperimentSpec;
use serde_json::json;

/// The 4-arm spec (coverage 0.9, one targeting rule, one segment) under `allocation`.
pub fn spec(allocation: serde_json::Value, reward_kind: &str) -> ExperimentSpec {
    ExperimentSpec::parse(&json!({
        "key": "support-triage",
        "arms": [
            {"key": "human", "role": "baseline"},
            {"key": "ai-assist", "role": "treatment"},
            {"key": "ai-auto", "role": "treatment"},
            {"key": "ai-hybrid", "role": "treatment"}
        ],
        "allocation": allocation,
        "coverage": 0.9,
        "targeting": {"region": ["emea", "amer"]},
        "metrics": [
            {"key": "reward", "kind": reward_kind, "direction": "increase", "role": "primary"}
        ],
        "segments": ["channel"]
    }))
    .expect("the benchmark spec is valid")
}

/// 1,024 requests of units `ticket-NNNNNNNN`, each with a region and a channel.
pub fn requests() -> Vec<AssignRequest> {
    (0..1024)
        .map(|i| {
            AssignRequest::new(
                format!("ticket-{i:08}"),
                None,
                [
                    ("region".to_string(), "emea".to_string()),
                    ("channel".to_string(), "email".to_string()),
                ]
                .into_iter()
                .collect(),
            )
            .expect("valid request")
        })
        .collect()
}
