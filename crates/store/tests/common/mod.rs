//! Fixtures shared by the store's integration tests: specs, assignments and outcomes built from plain values.

#![allow(dead_code)]

pub mod raw_log;

use std::collections::BTreeMap;

use liftlab_domain::{Assignment, ExperimentSpec, HandledBy, Millis, Outcome};
use liftlab_testkit::spec;
use serde_json::Value;

/// A fixed 50/50 experiment: `human` (baseline) vs `ai`, a binary primary, a summed duration
/// guardrail, and `region` as segment attribute.
pub fn fixed_spec(key: &str) -> ExperimentSpec {
    fixed_spec_weights(key, 0.5)
}

/// The fixed experiment with `ai` weighted `w_ai`.
pub fn fixed_spec_weights(key: &str, w_ai: f64) -> ExperimentSpec {
    parse(&spec::resolved_weighted(key, w_ai))
}

/// The fixed experiment with paired metrics: `minutes` has the covariate `estimate` and a cap
/// of 60, and `minutes_per_resolved` is the ratio of `minutes` to `resolved`.
pub fn paired_spec(key: &str) -> ExperimentSpec {
    parse(&spec::paired(key))
}

/// A Thompson experiment on the binary `resolved` reward that recomputes every `every` rewards.
pub fn thompson_spec(key: &str, warmup: u64, every: u64) -> ExperimentSpec {
    parse(&spec::thompson(key, warmup, every))
}

fn parse(doc: &Value) -> ExperimentSpec {
    ExperimentSpec::parse(doc).unwrap_or_else(|e| panic!("the fixture spec is valid: {e}"))
}

/// An assignment of `unit` (task = unit) to `arm` in period 0, epoch 0, with propensity `p`.
pub fn assignment(exp: &str, unit: &str, arm: &str, p: f64) -> Assignment {
    Assignment {
        experiment: exp.to_string(),
        unit_id: unit.to_string(),
        task_id: unit.to_string(),
        arm: arm.to_string(),
        in_experiment: true,
        version: 2,
        assignment_id: format!("a-{unit}"),
        propensity: p,
        period: 0,
        epoch: 0,
        segments: BTreeMap::from([("region".to_string(), region_of(unit).to_string())]),
        assigned_at: 1_000,
    }
}

/// A deterministic region for a unit, so segment aggregates have two groups.
pub fn region_of(unit: &str) -> &'static str {
    if unit.len() % 2 == 0 {
        "eu"
    } else {
        "us"
    }
}

/// An outcome of `unit` (served `arm`) with the given metric values.
pub fn outcome(exp: &str, event: &str, unit: &str, arm: &str, metrics: &[(&str, f64)]) -> Outcome {
    outcome_at(exp, event, unit, arm, metrics, 86_400_000 + 5_000)
}

/// [`outcome`] at time `ts`.
pub fn outcome_at(
    exp: &str,
    event: &str,
    unit: &str,
    arm: &str,
    metrics: &[(&str, f64)],
    ts: Millis,
) -> Outcome {
    Outcome {
        event_id: event.to_string(),
        experiment: exp.to_string(),
        task_id: unit.to_string(),
        unit_id: unit.to_string(),
        arm: arm.to_string(),
        epoch: 0,
        ts,
        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        handled_by: Some(if arm == "human" {
            HandledBy::Human
        } else {
            HandledBy::Ai
        }),
        model_version: None,
        attributes: BTreeMap::new(),
    }
}

/// The sample mean and variance (n − 1) of `xs`, computed directly.
pub fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = f64::from(u32::try_from(xs.len()).expect("a small sample"));
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() < 2 {
        0.0
    } else {
        xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)
    };
    (mean, var)
}

/// Relative closeness for comparing floating-point statistics.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}
