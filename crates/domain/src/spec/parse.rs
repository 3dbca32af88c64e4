//! The spec parser: walks a JSON document, collects every problem with its JSON pointer, and builds the validated spec.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{
    is_slug, Aggregate, Allocation, Analysis, Arm, ArmRole, Cap, Correction, Covariate,
    CusumSettings, Direction, DriftSpec, DurationUnit, ExperimentSpec, FixedAllocation, Metric,
    MetricKind, MetricRole, PageHinkleySettings, Ratio, Roi, Targeting, ThompsonAllocation, Unit,
};
use crate::error::SpecErrors;

/// Tolerance on the sum of fixed weights.
const WEIGHT_SUM_TOLERANCE: f64 = 1e-9;
/// Longest accepted name or owner.
const MAX_NAME: usize = 200;
/// Longest accepted free text (hypothesis, descriptions).
const MAX_TEXT: usize = 2000;
/// Longest accepted hash seed, attribute value or other identifier.
const MAX_ID: usize = 256;
/// Longest accepted attribute name.
const MAX_ATTRIBUTE: usize = 64;
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

/// Appends one reference token to a JSON pointer, escaping `~` and `/` as RFC 6901 says.
pub(crate) fn pointer(base: &str, token: &str) -> String {
    let mut out = String::with_capacity(base.len() + token.len() + 1);
    out.push_str(base);
    out.push('/');
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// The JSON type name of a value, for messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Collects problems while walking the document.
#[derive(Default)]
pub(crate) struct Walker {
    pub(crate) errors: SpecErrors,
}

impl Walker {
    pub(crate) fn problem(&mut self, at: &str, message: impl Into<String>) {
        self.errors.push(at, message);
    }

    /// The value as an object whose fields are all in `allowed`; unknown fields are problems.
    pub(crate) fn object<'a>(
        &mut self,
        at: &str,
        v: &'a Value,
        allowed: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        let Some(map) = v.as_object() else {
            self.problem(at, format!("must be an object, not {}", type_name(v)));
            return None;
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.problem(
                    &pointer(at, key),
                    format!(
                        "unknown field {key:?}; allowed fields are {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
        Some(map)
    }

    /// A required field: a problem when missing.
    fn required<'a>(
        &mut self,
        map: &'a Map<String, Value>,
        at: &str,
        key: &str,
    ) -> Option<&'a Value> {
        let v = map.get(key);
        if v.is_none() {
            self.problem(&pointer(at, key), "is required");
        }
        v
    }

    pub(crate) fn string(&mut self, at: &str, v: &Value, min: usize, max: usize) -> Option<String> {
        let Some(s) = v.as_str() else {
            self.problem(at, format!("must be a string, not {}", type_name(v)));
            return None;
        };
        let len = s.chars().count();
        if len < min {
            self.problem(at, "must not be empty");
            return None;
        }
        if len > max {
            self.problem(at, format!("must be at most {max} characters, got {len}"));
            return None;
        }
        Some(s.to_string())
    }

    fn slug(&mut self, at: &str, v: &Value, what: &str) -> Option<String> {
        let Some(s) = v.as_str() else {
            self.problem(at, format!("must be a string, not {}", type_name(v)));
            return None;
        };
        if !is_slug(s) {
            self.problem(
                at,
                format!("{what} {s:?} is not a slug: use 1–64 of a-z, 0-9, _ and -, starting with a letter or digit"),
            );
            return None;
        }
        Some(s.to_string())
    }

    /// An attribute name: 1–64 characters without control characters.
    fn attribute(&mut self, at: &str, name: &str) -> bool {
        let len = name.chars().count();
        if len == 0 || len > MAX_ATTRIBUTE || name.chars().any(char::is_control) {
            self.problem(
                at,
                format!("attribute name {name:?} must be 1–{MAX_ATTRIBUTE} characters without control characters"),
            );
            return false;
        }
        true
    }

    fn number(&mut self, at: &str, v: &Value) -> Option<f64> {
        match v.as_f64() {
            Some(x) if x.is_finite() => Some(x),
            Some(_) => {
                self.problem(at, "must be a finite number");
                None
            }
            None => {
                self.problem(at, format!("must be a number, not {}", type_name(v)));
                None
            }
        }
    }

    /// A number checked by `ok`, whose failure is described by `range`.
    fn number_in(
        &mut self,
        at: &str,
        v: &Value,
        range: &str,
        ok: impl Fn(f64) -> bool,
    ) -> Option<f64> {
        let x = self.number(at, v)?;
        if ok(x) {
            Some(x)
        } else {
            self.problem(at, format!("must be {range}, got {x}"));
            None
        }
    }

    fn integer(&mut self, at: &str, v: &Value, lo: u64, hi: u64) -> Option<u64> {
        let x = self.number(at, v)?;
        let whole = v.as_u64().or_else(|| {
            // JSON like `100.0` is a whole number too; the range check below bounds it.
            (x.fract() == 0.0 && (0.0..=1e15).contains(&x))
                .then(|| format!("{x:.0}").parse().ok())?
        });
        match whole {
            Some(n) if lo <= n && n <= hi => Some(n),
            _ => {
                self.problem(
                    at,
                    format!("must be a whole number from {lo} to {hi}, got {x}"),
                );
                None
            }
        }
    }

    fn boolean(&mut self, at: &str, v: &Value) -> Option<bool> {
        let b = v.as_bool();
        if b.is_none() {
            self.problem(at, format!("must be true or false, not {}", type_name(v)));
        }
        b
    }

    fn array<'a>(&mut self, at: &str, v: &'a Value) -> Option<&'a Vec<Value>> {
        let a = v.as_array();
        if a.is_none() {
            self.problem(at, format!("must be an array, not {}", type_name(v)));
        }
        a
    }

    /// One of a closed set of strings.
    fn choice<T: Copy>(&mut self, at: &str, v: &Value, options: &[(&str, T)]) -> Option<T> {
        let names = || {
            options
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(s) = v.as_str() else {
            self.problem(
                at,
                format!("must be one of {}, not {}", names(), type_name(v)),
            );
            return None;
        };
        match options.iter().find(|(n, _)| *n == s) {
            Some((_, t)) => Some(*t),
            None => {
                self.problem(
                    at,
                    format!("unknown value {s:?}; expected one of {}", names()),
                );
                None
            }
        }
    }
}

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

/// The metrics and the primary metric's index; ratio parts are checked against the declared keys.
fn metrics(w: &mut Walker, v: &Value, index: &Index) -> Option<(Vec<Metric>, usize)> {
    let items = w.array("/metrics", v)?;
    let mut metrics = Vec::with_capacity(items.len());
    let mut ok = true;
    let mut seen = BTreeSet::new();
    let mut primaries = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("/metrics/{i}");
        let Some(map) = w.object(&at, item, METRIC_FIELDS) else {
            ok = false;
            continue;
        };
        let key = w
            .required(map, &at, "key")
            .and_then(|v| w.slug(&pointer(&at, "key"), v, "metric key"));
        if let Some(k) = &key {
            if !seen.insert(k.clone()) {
                w.problem(&pointer(&at, "key"), format!("duplicate metric key {k:?}"));
                ok = false;
            }
        }
        let kind = w
            .required(map, &at, "kind")
            .and_then(|v| w.choice(&pointer(&at, "kind"), v, KINDS));
        let direction = w
            .required(map, &at, "direction")
            .and_then(|v| w.choice(&pointer(&at, "direction"), v, DIRECTIONS));
        let role = w
            .required(map, &at, "role")
            .and_then(|v| w.choice(&pointer(&at, "role"), v, METRIC_ROLES));
        if role == Some(MetricRole::Primary) {
            primaries.push(i);
            if primaries.len() > 1 {
                w.problem(
                    &pointer(&at, "role"),
                    format!(
                        "only one metric can be primary; /metrics/{} is primary already",
                        primaries[0]
                    ),
                );
                ok = false;
            }
        }
        let aggregate = map
            .get("aggregate")
            .map(|v| w.choice(&pointer(&at, "aggregate"), v, AGGREGATES));
        let description = map
            .get("description")
            .map(|v| w.string(&pointer(&at, "description"), v, 0, MAX_TEXT));
        let parts = MetricParts::walk(w, &at, map, index, kind, role);
        let (Some(key), Some(kind), Some(direction), Some(role), Some(parts)) =
            (key, kind, direction, role, parts)
        else {
            ok = false;
            continue;
        };
        let aggregate = match (aggregate, &parts.ratio) {
            (Some(None), _) => {
                ok = false;
                continue;
            }
            (None, Some(_)) => None,
            (None, None) => Some(kind.default_aggregate()),
            (Some(Some(_)), Some(_)) => {
                w.problem(
                    &pointer(&at, "aggregate"),
                    "a ratio metric has no events of its own to aggregate: its numerator's and denominator's aggregates apply",
                );
                ok = false;
                continue;
            }
            (Some(Some(a)), None) => Some(a),
        };
        let description = match description {
            None => None,
            Some(Some(d)) => Some(d),
            Some(None) => {
                ok = false;
                continue;
            }
        };
        metrics.push(Metric {
            key,
            kind,
            direction,
            role,
            aggregate,
            description,
            covariate: parts.covariate,
            ratio: parts.ratio,
            cap: parts.cap,
            max_harm: parts.max_harm,
        });
    }
    if items.is_empty() {
        w.problem("/metrics", "an experiment needs at least one metric");
        ok = false;
    } else if primaries.is_empty() {
        w.problem(
            "/metrics",
            "exactly one metric must have role primary, found none",
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    let primary = metrics.iter().position(|m| m.role == MetricRole::Primary)?;
    Some((metrics, primary))
}

/// The optional members of a metric that depend on its kind and role: covariate, ratio, cap
/// and max_harm.
struct MetricParts {
    covariate: Option<Covariate>,
    ratio: Option<Ratio>,
    cap: Option<Cap>,
    max_harm: Option<f64>,
}

impl MetricParts {
    /// Walks the members at `at` (a metric); `None` when any of them has a problem. `kind`
    /// and `role` are `None` when the metric's own are invalid (reported there).
    fn walk(
        w: &mut Walker,
        at: &str,
        map: &Map<String, Value>,
        index: &Index,
        kind: Option<MetricKind>,
        role: Option<MetricRole>,
    ) -> Option<MetricParts> {
        let mut ok = true;
        let key = map.get("key").and_then(Value::as_str);
        let ratio = match map.get("ratio") {
            None => None,
            Some(v) => {
                let ratio = ratio(w, &pointer(at, "ratio"), v, index, key);
                ok &= ratio.is_some();
                if kind == Some(MetricKind::Binary) {
                    w.problem(
                        &pointer(at, "kind"),
                        "a ratio metric cannot be binary: use continuous, duration, count or cost",
                    );
                    ok = false;
                }
                ratio
            }
        };
        let is_ratio = map.contains_key("ratio");
        let covariate = match map.get("covariate") {
            None => None,
            Some(_) if is_ratio => {
                w.problem(
                    &pointer(at, "covariate"),
                    "a ratio metric cannot have a covariate",
                );
                ok = false;
                None
            }
            Some(v) => {
                let at = pointer(at, "covariate");
                let attribute = w.object(&at, v, COVARIATE_FIELDS).and_then(|m| {
                    let name = w.required(m, &at, "attribute")?;
                    let name_at = pointer(&at, "attribute");
                    let name = w.string(&name_at, name, 0, usize::MAX)?;
                    w.attribute(&name_at, &name).then_some(name)
                });
                ok &= attribute.is_some();
                attribute.map(|attribute| Covariate { attribute })
            }
        };
        let cap = match map.get("cap") {
            None => None,
            Some(_) if is_ratio => {
                w.problem(
                    &pointer(at, "cap"),
                    "a ratio metric has no values of its own to cap: cap its numerator or denominator",
                );
                ok = false;
                None
            }
            Some(_) if kind == Some(MetricKind::Binary) => {
                w.problem(&pointer(at, "cap"), "a binary metric cannot be capped");
                ok = false;
                None
            }
            Some(v) => {
                let at = pointer(at, "cap");
                let max = w.object(&at, v, CAP_FIELDS).and_then(|m| {
                    let x = w.required(m, &at, "max")?;
                    let max_at = pointer(&at, "max");
                    let max = w.number_in(&max_at, x, "> 0", |x| x > 0.0)?;
                    if kind == Some(MetricKind::Count) && max.fract() != 0.0 {
                        w.problem(
                            &max_at,
                            format!("a count's cap must be a whole number, got {max}"),
                        );
                        return None;
                    }
                    Some(max)
                });
                ok &= max.is_some();
                max.map(|max| Cap { max })
            }
        };
        let max_harm = match (map.get("max_harm"), role) {
            (None, Some(MetricRole::Guardrail)) => Some(0.0),
            (None, _) => None,
            (Some(v), Some(MetricRole::Guardrail)) => {
                let x = w.number_in(&pointer(at, "max_harm"), v, "in [0, 1)", |x| {
                    (0.0..1.0).contains(&x)
                });
                ok &= x.is_some();
                x
            }
            (Some(_), Some(other)) => {
                let name = METRIC_ROLES
                    .iter()
                    .find(|(_, r)| *r == other)
                    .map_or("", |(n, _)| *n);
                w.problem(
                    &pointer(at, "max_harm"),
                    format!("only a guardrail has a harm tolerance; this metric's role is {name}"),
                );
                ok = false;
                None
            }
            // The role itself is invalid and reported there.
            (Some(_), None) => None,
        };
        ok.then_some(MetricParts {
            covariate,
            ratio,
            cap,
            max_harm,
        })
    }
}

/// A ratio's numerator and denominator: declared metrics, not ratios, not the metric itself.
fn ratio(
    w: &mut Walker,
    at: &str,
    v: &Value,
    index: &Index,
    own_key: Option<&str>,
) -> Option<Ratio> {
    let map = w.object(at, v, RATIO_FIELDS)?;
    let mut part = |field: &str| -> Option<String> {
        let x = w.required(map, at, field)?;
        let part_at = pointer(at, field);
        let key = w.string(&part_at, x, 1, MAX_ID)?;
        if Some(key.as_str()) == own_key {
            w.problem(
                &part_at,
                format!("a ratio cannot use itself as its {field}"),
            );
            return None;
        }
        let Some(declared) = index.metric(&key) else {
            w.problem(
                &part_at,
                format!("the {field} {key:?} is not a declared metric"),
            );
            return None;
        };
        if declared.ratio {
            w.problem(
                &part_at,
                format!("the {field} {key:?} is a ratio metric; a ratio's parts must be metrics that outcomes report"),
            );
            return None;
        }
        Some(key)
    };
    let numerator = part("numerator");
    let denominator = part("denominator");
    Some(Ratio {
        numerator: numerator?,
        denominator: denominator?,
    })
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

/// A list of declared metric keys (no duplicates) at `at`.
fn metric_refs(w: &mut Walker, at: &str, v: &Value, index: &Index) -> Option<Vec<String>> {
    let items = w.array(at, v)?;
    let mut ok = true;
    if items.is_empty() {
        w.problem(at, "must name at least one metric");
        ok = false;
    }
    let mut out: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_at = pointer(at, &i.to_string());
        let Some(key) = w.string(&item_at, item, 1, MAX_ID) else {
            ok = false;
            continue;
        };
        if !index.has_metric(&key) {
            w.problem(&item_at, format!("{key:?} is not a declared metric"));
            ok = false;
            continue;
        }
        if index.is_ratio(&key) {
            w.problem(
                &item_at,
                format!("{key:?} is a ratio metric; drift monitors metrics that outcomes report"),
            );
            ok = false;
            continue;
        }
        if out.contains(&key) {
            w.problem(&item_at, format!("duplicate metric {key:?}"));
            ok = false;
            continue;
        }
        out.push(key);
    }
    ok.then_some(out)
}

fn drift(w: &mut Walker, v: &Value, index: &Index) -> Option<DriftSpec> {
    let map = w.object("/drift", v, DRIFT_FIELDS)?;
    let refs = w
        .required(map, "/drift", "metrics")
        .and_then(|x| metric_refs(w, "/drift/metrics", x, index));
    let (lo, hi) = DRIFT_WINDOW;
    let reference_window = map.get("reference_window").map_or(Some(500), |x| {
        w.integer("/drift/reference_window", x, lo, hi)
    });
    let recent_window = map
        .get("recent_window")
        .map_or(Some(200), |x| w.integer("/drift/recent_window", x, lo, hi));
    let page_hinkley = match map.get("page_hinkley") {
        None => Some(PageHinkleySettings {
            delta: 0.1,
            lambda: 50.0,
        }),
        Some(x) => w
            .object("/drift/page_hinkley", x, PAGE_HINKLEY_FIELDS)
            .and_then(|m| {
                let delta = m.get("delta").map_or(Some(0.1), |x| {
                    w.number_in("/drift/page_hinkley/delta", x, "≥ 0", |d| d >= 0.0)
                });
                let lambda = m.get("lambda").map_or(Some(50.0), |x| {
                    w.number_in("/drift/page_hinkley/lambda", x, "> 0", |l| l > 0.0)
                });
                Some(PageHinkleySettings {
                    delta: delta?,
                    lambda: lambda?,
                })
            }),
    };
    let cusum = match map.get("cusum") {
        None => Some(CusumSettings {
            slack: 0.25,
            threshold: 15.0,
        }),
        Some(x) => w.object("/drift/cusum", x, CUSUM_FIELDS).and_then(|m| {
            let slack = m.get("slack").map_or(Some(0.25), |x| {
                w.number_in("/drift/cusum/slack", x, "≥ 0", |s| s >= 0.0)
            });
            let threshold = m.get("threshold").map_or(Some(15.0), |x| {
                w.number_in("/drift/cusum/threshold", x, "> 0", |h| h > 0.0)
            });
            Some(CusumSettings {
                slack: slack?,
                threshold: threshold?,
            })
        }),
    };
    let window_alpha = map.get("window_alpha").map_or(Some(0.001), |x| {
        w.number_in("/drift/window_alpha", x, "in (0, 1)", |a| {
            0.0 < a && a < 1.0
        })
    });
    let auto_rebaseline = map
        .get("auto_rebaseline")
        .map_or(Some(false), |x| w.boolean("/drift/auto_rebaseline", x));
    Some(DriftSpec {
        metrics: refs?,
        reference_window: reference_window?,
        recent_window: recent_window?,
        page_hinkley: page_hinkley?,
        cusum: cusum?,
        window_alpha: window_alpha?,
        auto_rebaseline: auto_rebaseline?,
    })
}

/// A reference to a declared metric of one kind, or the first metric of that kind by default.
fn metric_of_kind(
    w: &mut Walker,
    at: &str,
    v: Option<&Value>,
    index: &Index,
    kind: MetricKind,
    kind_name: &str,
) -> Option<Option<String>> {
    let Some(v) = v else {
        let first = index
            .metrics
            .iter()
            .find(|m| m.kind == Some(kind) && !m.ratio);
        return Some(first.map(|m| m.key.clone()));
    };
    let key = w.string(at, v, 1, MAX_ID)?;
    match index.metric(&key) {
        None => {
            w.problem(at, format!("{key:?} is not a declared metric"));
            None
        }
        Some(Declared { kind: Some(k), .. }) if *k != kind => {
            w.problem(at, format!("{key:?} must be a metric of kind {kind_name}"));
            None
        }
        Some(Declared { ratio: true, .. }) => {
            w.problem(
                at,
                format!("{key:?} is a ratio metric; ROI needs a metric measured per case"),
            );
            None
        }
        // A metric whose own kind is invalid is reported at the metric.
        Some(_) => Some(Some(key)),
    }
}

fn roi(w: &mut Walker, v: &Value, index: &Index) -> Option<Roi> {
    let map = w.object("/roi", v, ROI_FIELDS)?;
    let non_negative = |x: f64| x >= 0.0;
    let volume = w
        .required(map, "/roi", "volume_per_month")
        .and_then(|x| w.number_in("/roi/volume_per_month", x, "≥ 0", non_negative));
    let cost = w
        .required(map, "/roi", "human_cost_per_hour")
        .and_then(|x| w.number_in("/roi/human_cost_per_hour", x, "≥ 0", non_negative));
    let fixed_monthly_cost = map.get("fixed_monthly_cost").map_or(Some(0.0), |x| {
        w.number_in("/roi/fixed_monthly_cost", x, "≥ 0", non_negative)
    });
    let cost_metric = metric_of_kind(
        w,
        "/roi/cost_metric",
        map.get("cost_metric"),
        index,
        MetricKind::Cost,
        "cost",
    );
    let duration_metric = metric_of_kind(
        w,
        "/roi/duration_metric",
        map.get("duration_metric"),
        index,
        MetricKind::Duration,
        "duration",
    );
    let duration_unit = map
        .get("duration_unit")
        .map_or(Some(DurationUnit::Minutes), |x| {
            w.choice("/roi/duration_unit", x, DURATION_UNITS)
        });
    let currency = match map.get("currency") {
        None => Some("USD".to_string()),
        Some(x) => w.string("/roi/currency", x, 0, usize::MAX).and_then(|c| {
            if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) {
                Some(c)
            } else {
                w.problem(
                    "/roi/currency",
                    format!("{c:?} is not an ISO 4217 code such as USD or EUR"),
                );
                None
            }
        }),
    };
    Some(Roi {
        volume_per_month: volume?,
        human_cost_per_hour: cost?,
        fixed_monthly_cost: fixed_monthly_cost?,
        cost_metric: cost_metric?,
        duration_metric: duration_metric?,
        duration_unit: duration_unit?,
        currency: currency?,
    })
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
