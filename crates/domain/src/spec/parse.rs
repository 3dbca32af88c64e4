//! The spec parser: walks a JSON document, collects every problem with its JSON pointer, and builds the validated spec.
//!
//! This file reads the top level, arms, allocation, targeting, analysis and segments;
//! `metrics.rs` reads the metrics and what refers to them (drift, ROI), and `../walker.rs` is
//! the JSON walker both use.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{
    Aggregate, Allocation, Analysis, Arm, ArmRole, Cap, Correction, Covariate, CusumSettings,
    Direction, DriftSpec, DurationUnit, ExperimentSpec, FixedAllocation, Metric, MetricKind,
    MetricRole, PageHinkleySettings, Ratio, Roi, Targeting, ThompsonAllocation, Unit,
};
use crate::error::SpecErrors;

mod metrics;
use super::walker::{pointer, type_name, Walker};
use metrics::{drift, metrics, roi};

/// Tolerance on the sum of fixed weights.
const WEIGHT_SUM_TOLERANCE: f64 = 1e-9;
/// Longest accepted name or owner.
const MAX_NAME: usize = 200;
/// Longest accepted free text (hypothesis, descriptions).
const MAX_TEXT: usize = 2000;
/// Longest accepted hash seed, attribute value or other identifier.
const MAX_ID: usize = 256;
/// Most segment attributes an experiment may declare.
const MAX_SEGMENTS: usize = 16;
/// Upper bound of the Thompson warm-up and update interval.
const MAX_BANDIT_COUNT: u64 = 1_000_000;
/// Bounds of the drift windows.
const DRIFT_WINDOW: (u64, u64) = (2, 1_000_000);
/// Upper bound of `analysis.planned_units`.
const MAX_PLANNED_UNITS: u64 = 1_000_000_000_000;

const TOP_FIELDS: &[&str] = &[
    "key",
    "name",
    "hypothesis",
    "owner",
    "unit",
    "arms",
    "allocation",
    "coverage",
    "targeting",
    "metrics",
    "analysis",
    "segments",
    "drift",
    "roi",
    "hash_seed",
];
const ARM_FIELDS: &[&str] = &["key", "role", "description"];
const FIXED_FIELDS: &[&str] = &["policy", "weights"];
const THOMPSON_FIELDS: &[&str] = &[
    "policy",
    "reward",
    "floor",
    "warmup",
    "update_every",
    "discount",
];
const METRIC_FIELDS: &[&str] = &[
    "key",
    "kind",
    "direction",
    "role",
    "aggregate",
    "description",
    "covariate",
    "ratio",
    "cap",
    "max_harm",
];
const COVARIATE_FIELDS: &[&str] = &["attribute"];
const RATIO_FIELDS: &[&str] = &["numerator", "denominator"];
const CAP_FIELDS: &[&str] = &["max"];
const ANALYSIS_FIELDS: &[&str] = &[
    "alpha",
    "power",
    "mde",
    "sequential",
    "planned_units",
    "sequential_tuning",
    "correction",
    "auto_pause_on_harm",
];
const DRIFT_FIELDS: &[&str] = &[
    "metrics",
    "reference_window",
    "recent_window",
    "page_hinkley",
    "cusum",
    "window_alpha",
    "auto_rebaseline",
];
const PAGE_HINKLEY_FIELDS: &[&str] = &["delta", "lambda"];
const CUSUM_FIELDS: &[&str] = &["slack", "threshold"];
const ROI_FIELDS: &[&str] = &[
    "volume_per_month",
    "human_cost_per_hour",
    "fixed_monthly_cost",
    "cost_metric",
    "duration_metric",
    "duration_unit",
    "currency",
];

const UNITS: &[(&str, Unit)] = &[
    ("task", Unit::Task),
    ("customer", Unit::Customer),
    ("agent", Unit::Agent),
];
const ARM_ROLES: &[(&str, ArmRole)] = &[
    ("baseline", ArmRole::Baseline),
    ("treatment", ArmRole::Treatment),
];
const KINDS: &[(&str, MetricKind)] = &[
    ("binary", MetricKind::Binary),
    ("continuous", MetricKind::Continuous),
    ("duration", MetricKind::Duration),
    ("count", MetricKind::Count),
    ("cost", MetricKind::Cost),
];
const DIRECTIONS: &[(&str, Direction)] = &[
    ("increase", Direction::Increase),
    ("decrease", Direction::Decrease),
];
const METRIC_ROLES: &[(&str, MetricRole)] = &[
    ("primary", MetricRole::Primary),
    ("guardrail", MetricRole::Guardrail),
    ("secondary", MetricRole::Secondary),
];
const AGGREGATES: &[(&str, Aggregate)] = &[
    ("sum", Aggregate::Sum),
    ("mean", Aggregate::Mean),
    ("last", Aggregate::Last),
    ("max", Aggregate::Max),
];
const CORRECTIONS: &[(&str, Correction)] = &[
    ("none", Correction::None),
    ("holm", Correction::Holm),
    ("bh", Correction::Bh),
];
const DURATION_UNITS: &[(&str, DurationUnit)] = &[
    ("seconds", DurationUnit::Seconds),
    ("minutes", DurationUnit::Minutes),
    ("hours", DurationUnit::Hours),
];

#[derive(Clone, Copy)]
enum Policy {
    Fixed,
    Thompson,
}

const POLICIES: &[(&str, Policy)] = &[("fixed", Policy::Fixed), ("thompson", Policy::Thompson)];

/// Validates a whole spec document.
pub(crate) fn spec(doc: &Value) -> Result<ExperimentSpec, SpecErrors> {
    let mut w = Walker::default();
    let built = walk_spec(&mut w, doc);
    match built {
        Some(spec) if w.errors.is_empty() => Ok(spec),
        _ => {
            if w.errors.is_empty() {
                // Unreachable by construction (every `None` records a problem), kept as a guard.
                w.problem("", "invalid experiment spec");
            }
            Err(w.errors)
        }
    }
}

fn walk_spec(w: &mut Walker, doc: &Value) -> Option<ExperimentSpec> {
    let map = w.object("", doc, TOP_FIELDS)?;

    let key = w
        .required(map, "", "key")
        .and_then(|v| w.slug("/key", v, "key"));
    let name = map
        .get("name")
        .and_then(|v| w.string("/name", v, 1, MAX_NAME));
    let hypothesis = map
        .get("hypothesis")
        .map(|v| w.string("/hypothesis", v, 0, MAX_TEXT));
    let owner = map.get("owner").map(|v| w.string("/owner", v, 1, MAX_NAME));
    let unit = match map.get("unit") {
        Some(v) => w.choice("/unit", v, UNITS),
        None => Some(Unit::Task),
    };

    // Cross references are checked against every key the document declares, even where the
    // arm or metric itself is invalid, so that one mistake does not hide another.
    let index = Index::new(map);
    let arms = w.required(map, "", "arms").and_then(|v| arms(w, v));
    let metrics = w
        .required(map, "", "metrics")
        .and_then(|v| metrics(w, v, &index));
    let allocation = w
        .required(map, "", "allocation")
        .and_then(|v| allocation(w, v, &index));

    let coverage = match map.get("coverage") {
        Some(v) => w.number_in("/coverage", v, "between 0 and 1", |x| {
            (0.0..=1.0).contains(&x)
        }),
        None => Some(1.0),
    };
    let targeting = match map.get("targeting") {
        Some(v) => targeting(w, v),
        None => Some(Targeting::default()),
    };
    let analysis = match map.get("analysis") {
        Some(v) => analysis(w, v),
        None => Some(Analysis::default()),
    };
    let segments = match map.get("segments") {
        Some(v) => segments(w, v),
        None => Some(Vec::new()),
    };
    let drift = map.get("drift").map(|v| drift(w, v, &index));
    let roi = map.get("roi").map(|v| roi(w, v, &index));
    let hash_seed = map
        .get("hash_seed")
        .map(|v| w.string("/hash_seed", v, 1, MAX_ID));

    let key = key?;
    let hash_seed = match hash_seed {
        Some(seed) => seed?,
        None => key.clone(),
    };
    let (arms, baseline) = arms?;
    let (metrics, primary) = metrics?;
    Some(ExperimentSpec {
        name: match name {
            Some(n) => n,
            None if map.contains_key("name") => return None,
            None => key.clone(),
        },
        hypothesis: hypothesis.map(|h| h.ok_or(())).transpose().ok()?,
        owner: owner.map(|o| o.ok_or(())).transpose().ok()?,
        unit: unit?,
        allocation: allocation?,
        coverage: coverage?,
        targeting: targeting?,
        analysis: analysis?,
        segments: segments?,
        drift: drift.map(|d| d.ok_or(())).transpose().ok()?,
        roi: roi.map(|r| r.ok_or(())).transpose().ok()?,
        hash_seed: hash_seed.clone(),
        seed_prefix: crate::hash::SeedPrefix::new(&hash_seed),
        key,
        arms,
        metrics,
        baseline,
        primary,
    })
}

/// A metric as a cross reference sees it.
struct Declared {
    key: String,
    /// The metric's kind, when it names a valid one.
    kind: Option<MetricKind>,
    /// Whether the metric has a `ratio` member (valid or not).
    ratio: bool,
}

/// The arm and metric keys a document declares (string keys only), for cross references.
struct Index {
    arms: Vec<String>,
    metrics: Vec<Declared>,
}

impl Index {
    fn new(map: &Map<String, Value>) -> Self {
        let items = |field: &str| {
            map.get(field)
                .and_then(Value::as_array)
                .map(|a| a.as_slice())
                .unwrap_or_default()
        };
        let arms = items("arms")
            .iter()
            .filter_map(|a| a.get("key")?.as_str().map(str::to_string))
            .collect();
        let metrics = items("metrics")
            .iter()
            .filter_map(|m| {
                let key = m.get("key")?.as_str()?.to_string();
                let kind = m
                    .get("kind")
                    .and_then(Value::as_str)
                    .and_then(|k| KINDS.iter().find(|(n, _)| *n == k).map(|(_, kind)| *kind));
                let ratio = m.get("ratio").is_some();
                Some(Declared { key, kind, ratio })
            })
            .collect();
        Self { arms, metrics }
    }

    fn metric(&self, key: &str) -> Option<&Declared> {
        self.metrics.iter().find(|m| m.key == key)
    }

    fn has_metric(&self, key: &str) -> bool {
        self.metric(key).is_some()
    }

    fn is_ratio(&self, key: &str) -> bool {
        self.metric(key).is_some_and(|m| m.ratio)
    }
}

/// The arms and the baseline's index.
fn arms(w: &mut Walker, v: &Value) -> Option<(Vec<Arm>, usize)> {
    let items = w.array("/arms", v)?;
    let mut arms = Vec::with_capacity(items.len());
    let mut ok = true;
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("/arms/{i}");
        let Some(map) = w.object(&at, item, ARM_FIELDS) else {
            ok = false;
            continue;
        };
        let key = w
            .required(map, &at, "key")
            .and_then(|v| w.slug(&pointer(&at, "key"), v, "arm key"));
        if let Some(k) = &key {
            if !seen.insert(k.clone()) {
                w.problem(&pointer(&at, "key"), format!("duplicate arm key {k:?}"));
                ok = false;
            }
        }
        let role = w
            .required(map, &at, "role")
            .and_then(|v| w.choice(&pointer(&at, "role"), v, ARM_ROLES));
        let description = map
            .get("description")
            .map(|v| w.string(&pointer(&at, "description"), v, 0, MAX_TEXT));
        match (key, role, description) {
            (Some(key), Some(role), None) => arms.push(Arm {
                key,
                role,
                description: None,
            }),
            (Some(key), Some(role), Some(Some(d))) => arms.push(Arm {
                key,
                role,
                description: Some(d),
            }),
            _ => ok = false,
        }
    }
    if items.len() < 2 {
        w.problem(
            "/arms",
            format!("an experiment needs at least 2 arms, got {}", items.len()),
        );
        ok = false;
    }
    let baselines: Vec<usize> = arms
        .iter()
        .enumerate()
        .filter(|(_, a)| a.is_baseline())
        .map(|(i, _)| i)
        .collect();
    if ok && baselines.len() != 1 {
        w.problem(
            "/arms",
            format!(
                "exactly one arm must have role baseline, found {}",
                baselines.len()
            ),
        );
        ok = false;
    }
    ok.then(|| (arms, baselines[0]))
}

/// The allocation policy; arm and metric references are checked against the declared keys.
fn allocation(w: &mut Walker, v: &Value, index: &Index) -> Option<Allocation> {
    let Some(map) = v.as_object() else {
        w.problem(
            "/allocation",
            format!("must be an object, not {}", type_name(v)),
        );
        return None;
    };
    let policy = w
        .required(map, "/allocation", "policy")
        .and_then(|p| w.choice("/allocation/policy", p, POLICIES));
    let Some(policy) = policy else {
        // Without a policy, report only fields that no policy allows.
        let any: Vec<&str> = FIXED_FIELDS
            .iter()
            .chain(THOMPSON_FIELDS)
            .copied()
            .collect();
        w.object("/allocation", v, &any);
        return None;
    };
    match policy {
        Policy::Fixed => {
            let map = w.object("/allocation", v, FIXED_FIELDS)?;
            let arms = &index.arms;
            let weights = match map.get("weights") {
                Some(v) => fixed_weights(w, v, arms)?,
                None => {
                    let n = crate::count_f64(arms.len().max(1));
                    arms.iter().map(|a| (a.clone(), 1.0 / n)).collect()
                }
            };
            Some(Allocation::Fixed(FixedAllocation { weights }))
        }
        Policy::Thompson => {
            let map = w.object("/allocation", v, THOMPSON_FIELDS)?;
            let reward = w
                .required(map, "/allocation", "reward")
                .and_then(|r| w.slug("/allocation/reward", r, "reward metric"));
            let reward = reward.filter(|r| {
                if !index.has_metric(r) {
                    w.problem(
                        "/allocation/reward",
                        format!("the reward {r:?} is not a declared metric"),
                    );
                    return false;
                }
                if index.is_ratio(r) {
                    w.problem(
                        "/allocation/reward",
                        format!("the reward {r:?} is a ratio metric; the bandit needs a metric that outcomes report"),
                    );
                    return false;
                }
                true
            });
            let arm_count = index.arms.len().max(2);
            let max_floor = 1.0 / crate::count_f64(arm_count);
            let floor = match map.get("floor") {
                Some(f) => w.number_in(
                    "/allocation/floor",
                    f,
                    &format!("between 0 and 1/arms = {max_floor}"),
                    |x| 0.0 <= x && x <= max_floor,
                ),
                None => Some(0.01_f64.min(max_floor)),
            };
            let warmup = match map.get("warmup") {
                Some(x) => w.integer("/allocation/warmup", x, 0, MAX_BANDIT_COUNT),
                None => Some(100),
            };
            let update_every = match map.get("update_every") {
                Some(x) => w.integer("/allocation/update_every", x, 1, MAX_BANDIT_COUNT),
                None => Some(50),
            };
            let discount = match map.get("discount") {
                Some(x) => w.number_in("/allocation/discount", x, "in (0, 1]", |d| {
                    0.0 < d && d <= 1.0
                }),
                None => Some(1.0),
            };
            Some(Allocation::Thompson(ThompsonAllocation {
                reward: reward?,
                floor: floor?,
                warmup: warmup?,
                update_every: update_every?,
                discount: discount?,
            }))
        }
    }
}

/// Fixed weights: one non-negative number per arm, summing to 1, put in the arms' order.
fn fixed_weights(w: &mut Walker, v: &Value, arms: &[String]) -> Option<Vec<(String, f64)>> {
    let map = v.as_object().or_else(|| {
        w.problem(
            "/allocation/weights",
            format!(
                "must be an object of arm key to weight, not {}",
                type_name(v)
            ),
        );
        None
    })?;
    let mut ok = true;
    let mut given = BTreeMap::new();
    for (arm, x) in map {
        let at = pointer("/allocation/weights", arm);
        if !arms.contains(arm) {
            w.problem(&at, format!("weight for unknown arm {arm:?}"));
            ok = false;
            continue;
        }
        match w.number_in(&at, x, "≥ 0", |x| x >= 0.0) {
            Some(x) => {
                given.insert(arm.as_str(), x);
            }
            None => ok = false,
        }
    }
    let missing: Vec<&str> = arms
        .iter()
        .map(String::as_str)
        .filter(|k| !map.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        w.problem(
            "/allocation/weights",
            format!("missing weights for arms {}", missing.join(", ")),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    let sum: f64 = given.values().sum();
    if (sum - 1.0).abs() > WEIGHT_SUM_TOLERANCE {
        w.problem(
            "/allocation/weights",
            format!("weights must sum to 1, got {sum}"),
        );
        return None;
    }
    Some(
        arms.iter()
            .map(|a| (a.clone(), given.get(a.as_str()).copied().unwrap_or(0.0)))
            .collect(),
    )
}

fn targeting(w: &mut Walker, v: &Value) -> Option<Targeting> {
    let map = v.as_object().or_else(|| {
        w.problem(
            "/targeting",
            format!(
                "must be an object of attribute to allowed values, not {}",
                type_name(v)
            ),
        );
        None
    })?;
    let mut ok = true;
    let mut rules = BTreeMap::new();
    for (attribute, allowed) in map {
        let at = pointer("/targeting", attribute);
        ok &= w.attribute(&at, attribute);
        let Some(values) = w.array(&at, allowed) else {
            ok = false;
            continue;
        };
        if values.is_empty() {
            w.problem(&at, "must allow at least one value");
            ok = false;
        }
        let mut set = BTreeSet::new();
        for (i, value) in values.iter().enumerate() {
            match w.string(&pointer(&at, &i.to_string()), value, 0, MAX_ID) {
                Some(s) => {
                    set.insert(s);
                }
                None => ok = false,
            }
        }
        rules.insert(attribute.clone(), set);
    }
    ok.then_some(Targeting { rules })
}

fn analysis(w: &mut Walker, v: &Value) -> Option<Analysis> {
    let map = w.object("/analysis", v, ANALYSIS_FIELDS)?;
    let d = Analysis::default();
    let open_unit = |x: f64| 0.0 < x && x < 1.0;
    let alpha = map.get("alpha").map_or(Some(d.alpha), |x| {
        w.number_in("/analysis/alpha", x, "in (0, 1)", open_unit)
    });
    let power = map.get("power").map_or(Some(d.power), |x| {
        w.number_in("/analysis/power", x, "in (0, 1)", open_unit)
    });
    let mde = map.get("mde").map_or(Some(d.mde), |x| {
        w.number_in("/analysis/mde", x, "> 0", |m| m > 0.0)
    });
    let sequential = map
        .get("sequential")
        .map_or(Some(d.sequential), |x| w.boolean("/analysis/sequential", x));
    let planned_units = match map.get("planned_units") {
        None => Some(None),
        Some(x) => w
            .integer("/analysis/planned_units", x, 1, MAX_PLANNED_UNITS)
            .map(Some),
    };

    let sequential_tuning = map
        .get("sequential_tuning")
        .map_or(Some(d.sequential_tuning), |x| {
            w.number_in("/analysis/sequential_tuning", x, "> 0", |t| t > 0.0)
        });
    let correction = map.get("correction").map_or(Some(d.correction), |x| {
        w.choice("/analysis/correction", x, CORRECTIONS)
    });
    let auto_pause_on_harm = map
        .get("auto_pause_on_harm")
        .map_or(Some(d.auto_pause_on_harm), |x| {
            w.boolean("/analysis/auto_pause_on_harm", x)
        });
    if sequential == Some(false) && !map.contains_key("planned_units") {
        w.problem(
            "/analysis/planned_units",
            "is required when sequential is false: a fixed-horizon answer is valid only at its planned number of units",
        );
        return None;
    }
    Some(Analysis {
        alpha: alpha?,
        power: power?,
        mde: mde?,
        sequential: sequential?,
        planned_units: planned_units?,
        sequential_tuning: sequential_tuning?,
        correction: correction?,
        auto_pause_on_harm: auto_pause_on_harm?,
    })
}

fn segments(w: &mut Walker, v: &Value) -> Option<Vec<String>> {
    let items = w.array("/segments", v)?;
    let mut ok = true;
    if items.len() > MAX_SEGMENTS {
        w.problem(
            "/segments",
            format!(
                "at most {MAX_SEGMENTS} segment attributes, got {}",
                items.len()
            ),
        );
        ok = false;
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("/segments/{i}");
        let Some(s) = w.string(&at, item, 0, usize::MAX) else {
            ok = false;
            continue;
        };
        if !w.attribute(&at, &s) {
            ok = false;
        } else if out.contains(&s) {
            w.problem(&at, format!("duplicate segment attribute {s:?}"));
            ok = false;
        } else {
            out.push(s);
        }
    }
    ok.then_some(out)
}

/// Upgrades a stored spec document before it is parsed again.
///
/// Every spec stored before `analysis.planned_units` existed says `"sequential": false`
/// without it, because false was the default and the normalized document writes every
/// default. The strict parser rejects that; a stored spec is instead read as sequential (the
/// safe default: always-valid intervals stay valid at any look). Any other document is
/// returned unchanged.
pub(crate) fn upgrade_stored(mut doc: Value) -> Value {
    if let Some(analysis) = doc.get_mut("analysis").and_then(Value::as_object_mut) {
        let fixed = analysis.get("sequential") == Some(&Value::Bool(false));
        if fixed && !analysis.contains_key("planned_units") {
            analysis.insert("sequential".to_string(), Value::Bool(true));
        }
    }
    doc
}

/// Checks one reported metric value against its kind and converts it to f64.
pub(crate) fn metric_value(kind: MetricKind, v: &Value) -> Result<f64, String> {
    if kind == MetricKind::Binary {
        return match v {
            Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
            Value::Number(n) if n.as_f64() == Some(0.0) => Ok(0.0),
            Value::Number(n) if n.as_f64() == Some(1.0) => Ok(1.0),
            other => Err(format!(
                "a binary metric takes true, false, 0 or 1, not {}",
                describe(other)
            )),
        };
    }
    let Some(x) = v.as_f64() else {
        return Err(format!("must be a number, not {}", type_name(v)));
    };
    if !x.is_finite() {
        return Err(format!("must be a finite number, got {x}"));
    }
    match kind {
        MetricKind::Continuous | MetricKind::Binary => Ok(x),
        MetricKind::Duration | MetricKind::Cost if x < 0.0 => Err(format!("must be ≥ 0, got {x}")),
        MetricKind::Duration | MetricKind::Cost => Ok(x),
        MetricKind::Count if x < 0.0 || x.fract() != 0.0 => {
            Err(format!("a count must be a whole number ≥ 0, got {x}"))
        }
        MetricKind::Count => Ok(x),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("the string {s:?}"),
        other => type_name(other).to_string(),
    }
}
