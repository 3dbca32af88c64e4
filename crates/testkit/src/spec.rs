//! Spec builders: the experiment documents (plain JSON, as a client sends them) that tests share.

use serde_json::{json, Value};

/// Two arms, `human` (baseline) and `ai`, fixed 50/50; a duration primary `minutes` and a
/// binary guardrail `escalated`.
pub fn fixed(key: &str) -> Value {
    json!({
        "key": key,
        "arms": [
            {"key": "human", "role": "baseline"},
            {"key": "ai", "role": "treatment"}
        ],
        "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai": 0.5}},
        "metrics": [
            {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary"},
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail"}
        ]
    })
}

/// The support-desk experiment the report and page tests share: `human` (baseline) against
/// `ai_assist`, fixed 50/50; a duration primary `cycle_time`, a binary guardrail `escalated` and
/// a cost secondary `cost`; segmented by `region`. Tests add their hypothesis, owner and ROI
/// with [`with`].
pub fn support_desk() -> Value {
    json!({
        "key": "support-ai",
        "name": "Support AI assist",
        "arms": [
            {"key": "human", "role": "baseline"},
            {"key": "ai_assist", "role": "treatment"}
        ],
        "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai_assist": 0.5}},
        "metrics": [
            {"key": "cycle_time", "kind": "duration", "direction": "decrease", "role": "primary"},
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail"},
            {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary"}
        ],
        "segments": ["region"]
    })
}

/// [`fixed`] with a count secondary `touches`: the small spec of the in-process API tests.
pub fn fixed_with_touches(key: &str) -> Value {
    let mut spec = fixed(key);
    spec["metrics"]
        .as_array_mut()
        .expect("fixed has metrics")
        .push(json!({"key": "touches", "kind": "count", "direction": "decrease", "role": "secondary"}));
    spec
}

/// `spec` with the hash seed `seed`.
pub fn seeded(mut spec: Value, seed: &str) -> Value {
    spec["hash_seed"] = json!(seed);
    spec
}

/// Thompson sampling over `human`, `model-a` and `model-b`, rewarding `resolved`, recomputing
/// every 10 rewards after a warm-up of 10, so periods open in short runs.
pub fn bandit(key: &str) -> Value {
    json!({
        "key": key,
        "arms": [
            {"key": "human", "role": "baseline"},
            {"key": "model-a", "role": "treatment"},
            {"key": "model-b", "role": "treatment"}
        ],
        "allocation": {"policy": "thompson", "reward": "resolved", "floor": 0.05,
                       "warmup": 10, "update_every": 10},
        "metrics": [
            {"key": "resolved", "kind": "binary", "direction": "increase", "role": "primary"},
            {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "secondary"}
        ]
    })
}

/// Two arms, `ai` weighted `w_ai`; a binary primary `resolved`, a summed duration guardrail
/// `minutes`, and `region` as segment attribute.
pub fn resolved_weighted(key: &str, w_ai: f64) -> Value {
    json!({
        "key": key,
        "arms": [
            {"key": "human", "role": "baseline"},
            {"key": "ai", "role": "treatment"}
        ],
        "allocation": {"policy": "fixed", "weights": {"human": 1.0 - w_ai, "ai": w_ai}},
        "metrics": [
            {"key": "resolved", "kind": "binary", "direction": "increase", "role": "primary"},
            {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "guardrail",
             "aggregate": "sum"}
        ],
        "segments": ["region"]
    })
}

/// Paired metrics: `minutes` has the covariate `estimate` and a cap of 60, and
/// `minutes_per_resolved` is the ratio of `minutes` to `resolved`; `region` is a segment.
pub fn paired(key: &str) -> Value {
    json!({
        "key": key,
        "arms": [
            {"key": "human", "role": "baseline"},
            {"key": "ai", "role": "treatment"}
        ],
        "allocation": {"policy": "fixed"},
        "metrics": [
            {"key": "resolved", "kind": "binary", "direction": "increase", "role": "primary"},
            {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "guardrail",
             "aggregate": "sum", "covariate": {"attribute": "estimate"}, "cap": {"max": 60}},
            {"key": "minutes_per_resolved", "kind": "duration", "direction": "decrease",
             "role": "secondary", "ratio": {"numerator": "minutes", "denominator": "resolved"}}
        ],
        "segments": ["region"]
    })
}

/// Thompson sampling over `human`, `ai` and `hybrid` on the binary `resolved` reward,
/// recomputing every `every` rewards after `warmup`.
pub fn thompson(key: &str, warmup: u64, every: u64) -> Value {
    json!({
        "key": key,
        "arms": [
            {"key": "human", "role": "baseline"},
            {"key": "ai", "role": "treatment"},
            {"key": "hybrid", "role": "treatment"}
        ],
        "allocation": {"policy": "thompson", "reward": "resolved", "floor": 0.05,
                       "warmup": warmup, "update_every": every},
        "metrics": [
            {"key": "resolved", "kind": "binary", "direction": "increase", "role": "primary"}
        ]
    })
}

/// `doc` with every top-level field of `extra` set over it.
pub fn with(mut doc: Value, extra: Value) -> Value {
    if let (Some(d), Value::Object(e)) = (doc.as_object_mut(), extra) {
        d.extend(e);
    }
    doc
}
