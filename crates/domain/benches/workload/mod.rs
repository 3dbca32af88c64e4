//! The assignment workload shared by the criterion benches (`benches/assign.rs`) and the
//! CPU-time probe (`examples/domain_cpu_time.rs`): a 4-arm spec, a set of requests and a warmed bandit.

use liftlab_domain::assign::{choose_arm, decide, initial_period, AssignRequest, Decision};
use liftlab_domain::thompson::BanditState;
use liftlab_domain::{AllocationPeriod, Assignment, ExperimentSpec, Status};
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

/// A 4-arm bandit state after `per_arm` rewards per arm with distinct arm means.
pub fn warmed_state(spec: &ExperimentSpec, binary: bool, per_arm: u32) -> BanditState {
    let mut state = BanditState::new(spec).expect("a Thompson spec");
    let arms = ["human", "ai-assist", "ai-auto", "ai-hybrid"];
    for i in 0..4 * per_arm {
        let k = usize::try_from(i % 4).expect("small");
        let reward = if binary {
            // Success rates 0.30, 0.34, 0.32, 0.31 by a deterministic pattern.
            let rate = [30, 34, 32, 31][k];
            f64::from(u8::from((i / 4) % 100 < rate))
        } else {
            12.0 + f64::from(u8::try_from(k).expect("small")) * 0.1 + f64::from(i % 13) - 6.0
        };
        state.observe(arms[k], reward).expect("valid reward");
    }
    state
}

/// The decision alone for `req`, as both timers measure it (`<name>_decision`).
pub fn decision(spec: &ExperimentSpec, period: &AllocationPeriod, req: &AssignRequest) -> Decision {
    choose_arm(
        spec,
        Status::Running,
        period,
        req.unit_id(),
        req.attributes(),
    )
}

/// The decision plus the owned record to store, as both timers measure it (`<name>_record`).
pub fn record(spec: &ExperimentSpec, period: &AllocationPeriod, req: &AssignRequest) -> Assignment {
    decide(
        spec,
        Status::Running,
        3,
        0,
        period,
        req,
        String::from("as-0000000000000001"),
        1_700_000_000_000,
    )
}

/// A later allocation period of the Thompson `spec`: period 17, its weights far from even.
pub fn thompson_period(spec: &ExperimentSpec) -> AllocationPeriod {
    AllocationPeriod {
        period: 17,
        weights: vec![
            ("human".into(), 0.05),
            ("ai-assist".into(), 0.61),
            ("ai-auto".into(), 0.29),
            ("ai-hybrid".into(), 0.05),
        ],
        ..initial_period(spec, 0)
    }
}
