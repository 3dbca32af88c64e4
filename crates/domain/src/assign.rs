//! Assignment decisions: validated requests, targeting, coverage and hashing into the current allocation period.
//!
//! [`decide`] is pure: the caller supplies the experiment's status, version, epoch, current
//! allocation period, a fresh assignment id and the time. Stickiness is the store's job: a
//! returning unit is served the assignment stored for it first (first write wins per
//! experiment and unit), so `decide` runs only for units without one. Because the hash is
//! deterministic, a fixed experiment would place the unit in the same arm anyway; under
//! Thompson sampling the weights move between periods, and only the stored record keeps a unit
//! in its first arm.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::error::SpecErrors;
use crate::hash::choose_weighted;
use crate::model::{AllocationPeriod, Assignment, Millis, Status};
use crate::spec::walker::{pointer, Walker};
use crate::spec::{Allocation, ExperimentSpec};

/// Longest accepted unit id, task id, attribute value.
pub const MAX_ID_CHARS: usize = 256;
/// Longest accepted attribute name.
pub const MAX_ATTRIBUTE_CHARS: usize = 64;
/// Most attributes one request may carry.
pub const MAX_ATTRIBUTES: usize = 64;

const REQUEST_FIELDS: &[&str] = &["unit_id", "task_id", "attributes"];

/// A validated assignment request: `{unit_id, task_id?, attributes?}`.
///
/// `unit_id` and `task_id` are non-empty strings of at most 256 characters; `task_id` defaults
/// to the unit id. Attributes are at most 64 pairs of a name (1–64 characters) and a value:
/// a string of at most 256 characters or a JSON number, which is kept as its JSON text (so a
/// covariate such as `{"estimated_minutes": 42.5}` parses back as the same `f64`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignRequest {
    unit_id: String,
    task_id: Option<String>,
    attributes: BTreeMap<String, String>,
}

impl AssignRequest {
    /// Validates the parts of a request; problems carry pointers as if they came from JSON.
    pub fn new(
        unit_id: impl Into<String>,
        task_id: Option<String>,
        attributes: BTreeMap<String, String>,
    ) -> Result<Self, SpecErrors> {
        let unit_id = unit_id.into();
        let mut w = Walker::default();
        check_id(&mut w, "/unit_id", &unit_id);
        if let Some(t) = &task_id {
            check_id(&mut w, "/task_id", t);
        }
        check_attribute_count(&mut w, attributes.len());
        for (name, value) in &attributes {
            check_attribute(&mut w, name, value);
        }
        if w.errors.is_empty() {
            Ok(Self {
                unit_id,
                task_id,
                attributes,
            })
        } else {
            Err(w.errors)
        }
    }

    /// Validates a JSON request body; unknown fields and wrong types are problems too.
    pub fn parse(body: &Value) -> Result<Self, SpecErrors> {
        let mut w = Walker::default();
        let Some(map) = w.object("", body, REQUEST_FIELDS) else {
            return Err(w.errors);
        };
        let unit_id = match map.get("unit_id") {
            Some(v) => w.string("/unit_id", v, 1, MAX_ID_CHARS),
            None => {
                w.problem("/unit_id", "is required");
                None
            }
        };
        let task_id = map
            .get("task_id")
            .filter(|v| !v.is_null())
            .map(|v| w.string("/task_id", v, 1, MAX_ID_CHARS));
        let mut attributes: BTreeMap<String, String> = BTreeMap::new();
        if let Some(v) = map.get("attributes").filter(|v| !v.is_null()) {
            match v.as_object() {
                None => w.problem(
                    "/attributes",
                    "must be an object of attribute name to string or number",
                ),
                Some(attrs) => {
                    check_attribute_count(&mut w, attrs.len());
                    for (name, value) in attrs {
                        let text = match value {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            _ => {
                                w.problem(
                                    &pointer("/attributes", name),
                                    "must be a string or a number",
                                );
                                continue;
                            }
                        };
                        check_attribute(&mut w, name, &text);
                        attributes.insert(name.to_string(), text);
                    }
                }
            }
        }
        match (unit_id, task_id) {
            (Some(unit_id), None) if w.errors.is_empty() => Ok(Self {
                unit_id,
                task_id: None,
                attributes,
            }),
            (Some(unit_id), Some(Some(task_id))) if w.errors.is_empty() => Ok(Self {
                unit_id,
                task_id: Some(task_id),
                attributes,
            }),
            _ => Err(w.errors),
        }
    }

    /// The randomized unit's id.
    pub fn unit_id(&self) -> &str {
        &self.unit_id
    }

    /// The correlation id outcomes will refer to; the unit id when none was given.
    pub fn task_id(&self) -> &str {
        self.task_id.as_deref().unwrap_or(&self.unit_id)
    }

    /// The unit's attributes (for targeting, segments and covariates).
    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.attributes
    }

    /// Checks the request's covariate attributes against the spec: each one the request sends
    /// must be a number (a JSON number, or text that reads as a finite number). A missing
    /// covariate is fine: the unit counts with covariate 0.
    pub fn check_covariates(&self, spec: &ExperimentSpec) -> Result<(), SpecErrors> {
        let mut w = Walker::default();
        for metric in spec.metrics() {
            let Some(attribute) = metric.covariate() else {
                continue;
            };
            let Some(value) = self.attributes.get(attribute) else {
                continue;
            };
            let at = pointer("/attributes", attribute);
            if covariate_number(value).is_none() && !w.errors.pointers().contains(&at.as_str()) {
                w.problem(
                    &at,
                    format!(
                        "must be a number: it is the covariate of metric {:?}",
                        metric.key()
                    ),
                );
            }
        }
        if w.errors.is_empty() {
            Ok(())
        } else {
            Err(w.errors)
        }
    }
}

/// The number an attribute value gives as a covariate: finite decimal text (a JSON number sent
/// at assignment is kept as its text), else `None`.
pub fn covariate_number(value: &str) -> Option<f64> {
    value.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// The one id rule, for unit, task, event and model-version ids: non-empty and at most
/// [`MAX_ID_CHARS`] characters. The problem, if any, reads after the id's name or pointer.
pub fn id_problem(id: &str) -> Option<String> {
    let len = id.chars().count();
    if len == 0 {
        Some("must not be empty".to_string())
    } else if len > MAX_ID_CHARS {
        Some(format!(
            "must be at most {MAX_ID_CHARS} characters, got {len}"
        ))
    } else {
        None
    }
}

fn check_id(w: &mut Walker, at: &str, id: &str) {
    if let Some(message) = id_problem(id) {
        w.problem(at, message);
    }
}

fn check_attribute_count(w: &mut Walker, n: usize) {
    if n > MAX_ATTRIBUTES {
        w.problem(
            "/attributes",
            format!("at most {MAX_ATTRIBUTES} attributes, got {n}"),
        );
    }
}

fn check_attribute(w: &mut Walker, name: &str, value: &str) {
    let at = pointer("/attributes", name);
    let len = name.chars().count();
    if len == 0 || len > MAX_ATTRIBUTE_CHARS {
        w.problem(
            &at,
            format!("attribute names must be 1–{MAX_ATTRIBUTE_CHARS} characters"),
        );
    }
    let vlen = value.chars().count();
    if vlen > MAX_ID_CHARS {
        w.problem(
            &at,
            format!("must be at most {MAX_ID_CHARS} characters, got {vlen}"),
        );
    }
}

/// The first allocation period of an experiment: the fixed weights, or uniform weights for
/// Thompson sampling (which keeps them until the warm-up is over).
pub fn initial_period(spec: &ExperimentSpec, now: Millis) -> AllocationPeriod {
    AllocationPeriod {
        experiment: spec.key().to_string(),
        period: 0,
        weights: initial_weights(spec),
        opened_at: now,
        rewards_seen: 0,
    }
}

/// The weights of period 0, in the spec's arm order.
pub(crate) fn initial_weights(spec: &ExperimentSpec) -> Vec<(String, f64)> {
    match spec.allocation() {
        Allocation::Fixed(fixed) => fixed.weights().to_vec(),
        Allocation::Thompson(_) => uniform(spec),
    }
}

/// Equal weights over the spec's arms.
pub(crate) fn uniform(spec: &ExperimentSpec) -> Vec<(String, f64)> {
    let w = 1.0 / crate::count_f64(spec.arms().len());
    spec.arms()
        .iter()
        .map(|a| (a.key().to_string(), w))
        .collect()
}

/// True when `period` lists exactly the spec's arms, in the spec's order.
fn period_fits(spec: &ExperimentSpec, period: &AllocationPeriod) -> bool {
    period.weights.len() == spec.arms().len()
        && period
            .weights
            .iter()
            .zip(spec.arms())
            .all(|((k, _), a)| k == a.key())
}

/// Why a unit is answered the baseline arm with `in_experiment: false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutReason {
    /// The experiment is a draft, paused or stopped.
    NotRunning,
    /// The unit's attributes miss the spec's targeting (an attribute absent or not allowed).
    NotTargeted,
    /// The unit's hash falls outside the spec's coverage.
    OutsideCoverage,
}

impl OutReason {
    pub const ALL: [OutReason; 3] = [
        OutReason::NotRunning,
        OutReason::NotTargeted,
        OutReason::OutsideCoverage,
    ];

    /// The reason's name in the API and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            OutReason::NotRunning => "not_running",
            OutReason::NotTargeted => "not_targeted",
            OutReason::OutsideCoverage => "outside_coverage",
        }
    }
}

/// The arm chosen for a unit: the allocation-free core of [`decide`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// Index of the chosen arm in the spec's arm order (the baseline's when not in the experiment).
    pub arm: usize,
    pub in_experiment: bool,
    /// Probability with which the unit was placed in `arm` (1.0 when not in the experiment).
    pub propensity: f64,
    /// Why the unit is not in the experiment; `None` exactly when `in_experiment`.
    pub reason: Option<OutReason>,
}

/// Chooses the arm for a unit that has no stored assignment yet, without allocating.
///
/// - Not running, untargeted (a targeting attribute missing or not allowed) or outside the
///   coverage: the baseline arm with `in_experiment: false` and propensity 1.0.
/// - Otherwise `hash_v2(hash_seed, unit_id)` is placed in the bucket ranges of the period's
///   weights scaled by the coverage, exactly as a GrowthBook SDK does, for both policies.
///
/// **Propensity** is the chosen arm's weight in the period: the probability of that arm
/// *given that the unit is in the experiment*. Coverage drops units before any arm is chosen
/// (each range shrinks by the same factor), so it scales every arm alike and does not enter
/// the propensity; inverse-propensity estimates over in-experiment units stay unbiased.
///
/// `period` must belong to this spec (the same arm keys, in order). If it does not, for
/// example a stale period after the arms changed, the spec's initial weights are used; the
/// store should open a fresh period whenever it stores a spec with different arms.
pub fn choose_arm(
    spec: &ExperimentSpec,
    status: Status,
    period: &AllocationPeriod,
    unit_id: &str,
    attributes: &BTreeMap<String, String>,
) -> Decision {
    let outside = |reason| Decision {
        arm: spec.baseline_index(),
        in_experiment: false,
        propensity: 1.0,
        reason: Some(reason),
    };
    if status != Status::Running {
        return outside(OutReason::NotRunning);
    }
    if !spec.targeting().matches(attributes) {
        return outside(OutReason::NotTargeted);
    }
    // The same value as `hash_v2(spec.hash_seed(), unit_id)`, with the seed hashed once per spec.
    let h = spec.seed_prefix().hash_v2(unit_id);
    let chosen = if period_fits(spec, period) {
        choose_weighted(h, period.weights.iter().map(|(_, w)| w), spec.coverage())
            .map(|i| (i, period.weights[i].1))
    } else {
        let weights = initial_weights(spec);
        choose_weighted(h, weights.iter().map(|(_, w)| w), spec.coverage())
            .map(|i| (i, weights[i].1))
    };
    match chosen {
        Some((arm, propensity)) => Decision {
            arm,
            in_experiment: true,
            propensity,
            reason: None,
        },
        None => outside(OutReason::OutsideCoverage),
    }
}

/// Why the answer served to `req` is not in the experiment (`None` when it is).
///
/// For an answer [`decide`] just made this is exactly [`choose_arm`]'s reason. A returning
/// unit of a running experiment is served the assignment stored for it first, which does not
/// keep its reason; it is judged on the current spec and request: `not_targeted` when the
/// request misses the targeting now, otherwise `outside_coverage` (the unit was outside the
/// coverage when first assigned, or the spec or the unit's attributes changed since, and the
/// first answer stands).
pub fn out_reason(
    spec: &ExperimentSpec,
    status: Status,
    answer: &Assignment,
    req: &AssignRequest,
) -> Option<OutReason> {
    if answer.in_experiment {
        None
    } else if status != Status::Running {
        Some(OutReason::NotRunning)
    } else if !spec.targeting().matches(&req.attributes) {
        Some(OutReason::NotTargeted)
    } else {
        Some(OutReason::OutsideCoverage)
    }
}

/// Decides the arm for a unit that has no stored assignment yet and builds the record to store.
///
/// The record keeps the request's values of the spec's segment and covariate attributes (see
/// [`Assignment::segments`]); callers check covariates first with
/// [`AssignRequest::check_covariates`]. The choice is [`choose_arm`]'s; `Assignment::period` is the given period's number even
/// when a stale period made the choice fall back to the spec's initial weights.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    spec: &ExperimentSpec,
    status: Status,
    version: u64,
    epoch: u64,
    period: &AllocationPeriod,
    req: &AssignRequest,
    assignment_id: String,
    now: Millis,
) -> Assignment {
    let decision = choose_arm(spec, status, period, &req.unit_id, &req.attributes);
    let mut segments = BTreeMap::new();
    let covariates = spec.metrics().iter().filter_map(|m| m.covariate());
    for attribute in spec.segments().iter().map(String::as_str).chain(covariates) {
        if let Some(value) = req.attributes.get(attribute) {
            segments.insert(attribute.to_string(), value.clone());
        }
    }
    Assignment {
        experiment: spec.key().to_string(),
        unit_id: req.unit_id.clone(),
        task_id: req.task_id().to_string(),
        arm: spec.arms()[decision.arm].key().to_string(),
        in_experiment: decision.in_experiment,
        version,
        assignment_id,
        propensity: decision.propensity,
        period: period.period,
        epoch,
        segments,
        assigned_at: now,
    }
}

#[cfg(test)]
mod tests;
