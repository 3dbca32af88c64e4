//! Simulator scenarios: the JSON format, its validation with pointers, per-task draws and the exact ground truth.
//!
//! A scenario describes a workflow experiment whose truth is known: the experiment spec, how
//! many tasks arrive and how fast, how long outcomes take, and a ground-truth model per arm
//! (cycle time, escalation and quality probabilities, AI inference cost, human minutes priced
//! at a human cost per hour, and who handled the task). Segment attributes may change the model
//! per arm, the model may drift at a task index and the traffic mix may change. The format is
//! documented in `api-spec/examples/scenarios/README.md`.
//!
//! Every draw comes from a caller's seeded generator, and [`Scenario::truth`] computes the
//! expected value of each metric exactly (no simulation), so a run can be judged against it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use liftlab_domain::spec::{ArmRole, Direction, DurationUnit, ExperimentSpec, MetricKind};
use liftlab_domain::HandledBy;
use rand::Rng;
use rand_distr::{Distribution, Exp, LogNormal, Normal, Poisson};
use serde::Serialize;
use serde_json::{Map, Value};

/// Human minutes per minute of cycle time, by who handled the task, unless a scenario says otherwise.
const DEFAULT_HUMAN_SHARE: [(HandledBy, f64); 3] = [
    (HandledBy::Human, 1.0),
    (HandledBy::Hybrid, 0.5),
    (HandledBy::Ai, 0.1),
];

/// Who handled a task, by its name in JSON (the names of [`HandledBy`]).
fn handled_by(s: &str) -> Option<HandledBy> {
    match s {
        "ai" => Some(HandledBy::Ai),
        "human" => Some(HandledBy::Human),
        "hybrid" => Some(HandledBy::Hybrid),
        _ => None,
    }
}

/// A distribution of a non-binary quantity, scaled by multipliers at draw time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dist {
    /// Always the same value.
    Constant(f64),
    /// Log-normal with the given median and log-scale sd; mean median·exp(σ²/2).
    Lognormal { median: f64, sigma: f64 },
    /// Exponential with the given mean.
    Exponential { mean: f64 },
    /// Normal with the given mean and sd (only for continuous quantities: it can go negative).
    Normal { mean: f64, sd: f64 },
}

impl Dist {
    /// The expected value.
    pub fn mean(&self) -> f64 {
        match *self {
            Dist::Constant(v) => v,
            Dist::Lognormal { median, sigma } => median * (sigma * sigma / 2.0).exp(),
            Dist::Exponential { mean } => mean,
            Dist::Normal { mean, .. } => mean,
        }
    }

    /// True when every draw is ≥ 0.
    fn non_negative(&self) -> bool {
        match *self {
            Dist::Constant(v) => v >= 0.0,
            Dist::Lognormal { .. } | Dist::Exponential { .. } => true,
            Dist::Normal { .. } => false,
        }
    }

    /// One draw. The parameters were checked when the scenario was parsed, so the
    /// constructors cannot fail; a failure falls back to the mean rather than panicking.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match *self {
            Dist::Constant(v) => v,
            Dist::Lognormal { median, sigma } => LogNormal::new(median.ln(), sigma)
                .map(|d| d.sample(rng))
                .unwrap_or(median),
            Dist::Exponential { mean } => {
                Exp::new(1.0 / mean).map(|d| d.sample(rng)).unwrap_or(mean)
            }
            Dist::Normal { mean, sd } => {
                Normal::new(mean, sd).map(|d| d.sample(rng)).unwrap_or(mean)
            }
        }
    }
}

/// A model parameter that segments and drift can multiply.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Param {
    CycleTime,
    Escalation,
    Quality,
    AiCost,
    Touches,
    Score,
    /// A named binary rate of the arms' `rates`.
    Rate(String),
}

impl Param {
    const BUILTIN: [Param; 6] = [
        Param::CycleTime,
        Param::Escalation,
        Param::Quality,
        Param::AiCost,
        Param::Touches,
        Param::Score,
    ];

    fn name(&self) -> &str {
        match self {
            Param::CycleTime => "cycle_time",
            Param::Escalation => "escalation",
            Param::Quality => "quality",
            Param::AiCost => "ai_cost",
            Param::Touches => "touches",
            Param::Score => "score",
            Param::Rate(name) => name,
        }
    }

    /// A built-in parameter, or one of the named rates.
    fn parse(s: &str, rates: &[String]) -> Option<Param> {
        Param::BUILTIN
            .into_iter()
            .find(|p| p.name() == s)
            .or_else(|| {
                rates
                    .iter()
                    .any(|r| r == s)
                    .then(|| Param::Rate(s.to_string()))
            })
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Param {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// A simulated quantity a spec metric can be fed from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quantity {
    /// Time from arrival to resolution, in the scenario's duration unit.
    CycleTime,
    /// Whether the task was escalated (binary).
    Escalated,
    /// Whether the result passed quality review (binary).
    Quality,
    /// AI inference cost of the task.
    AiCost,
    /// Human time spent: cycle time × the human share of whoever handled it.
    HumanMinutes,
    /// AI cost plus human time priced at the human cost per hour.
    Cost,
    /// A whole number of touches (Poisson).
    Touches,
    /// A free continuous score.
    Score,
    /// A named binary rate of the arms' `rates`.
    Rate(String),
}

impl Quantity {
    const BUILTIN: [Quantity; 8] = [
        Quantity::CycleTime,
        Quantity::Escalated,
        Quantity::Quality,
        Quantity::AiCost,
        Quantity::HumanMinutes,
        Quantity::Cost,
        Quantity::Touches,
        Quantity::Score,
    ];

    /// The name used in scenario files.
    pub fn name(&self) -> &str {
        match self {
            Quantity::CycleTime => "cycle_time",
            Quantity::Escalated => "escalated",
            Quantity::Quality => "quality",
            Quantity::AiCost => "ai_cost",
            Quantity::HumanMinutes => "human_minutes",
            Quantity::Cost => "cost",
            Quantity::Touches => "touches",
            Quantity::Score => "score",
            Quantity::Rate(name) => name,
        }
    }

    /// A built-in quantity, or one of the named rates.
    fn parse(s: &str, rates: &[String]) -> Option<Quantity> {
        Quantity::BUILTIN
            .into_iter()
            .find(|q| q.name() == s)
            .or_else(|| {
                rates
                    .iter()
                    .any(|r| r == s)
                    .then(|| Quantity::Rate(s.to_string()))
            })
    }

    fn is_binary(&self) -> bool {
        matches!(
            self,
            Quantity::Escalated | Quantity::Quality | Quantity::Rate(_)
        )
    }

    /// Whether a metric of `kind` can carry this quantity.
    fn fits(&self, kind: MetricKind) -> bool {
        match kind {
            MetricKind::Binary => self.is_binary(),
            MetricKind::Duration => matches!(self, Quantity::CycleTime | Quantity::HumanMinutes),
            MetricKind::Cost => matches!(self, Quantity::Cost | Quantity::AiCost),
            MetricKind::Count => *self == Quantity::Touches,
            MetricKind::Continuous => !self.is_binary(),
        }
    }

    /// The quantity a metric is fed from when the scenario does not say: a named rate with
    /// the metric's key when the arms define one, otherwise by kind (and, for binary metrics,
    /// by name and direction).
    fn default_for(
        key: &str,
        kind: MetricKind,
        direction: Direction,
        rates: &[String],
    ) -> Quantity {
        match kind {
            MetricKind::Duration => Quantity::CycleTime,
            MetricKind::Cost => Quantity::Cost,
            MetricKind::Count => Quantity::Touches,
            MetricKind::Continuous => Quantity::Score,
            MetricKind::Binary if rates.iter().any(|r| r == key) => Quantity::Rate(key.to_string()),
            MetricKind::Binary => {
                let escalation_like = key.contains("escalat")
                    || key.contains("reopen")
                    || key.contains("error")
                    || key.contains("fail");
                if escalation_like || direction == Direction::Decrease {
                    Quantity::Escalated
                } else {
                    Quantity::Quality
                }
            }
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// The ground-truth model of one arm.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArmModel {
    pub cycle_time: Option<Dist>,
    pub escalation: f64,
    pub quality: f64,
    pub ai_cost: Dist,
    pub touches: Option<f64>,
    pub score: Option<Dist>,
    /// Named binary rates (probabilities), for binary metrics beyond escalation and quality.
    pub rates: BTreeMap<String, f64>,
    /// Who handles the arm's tasks, as (who, probability) with probabilities summing to 1.
    pub handled_by: Vec<(HandledBy, f64)>,
    pub model_version: Option<String>,
}

/// Factors applied to an arm's parameters (1 when absent).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Multipliers(BTreeMap<Param, f64>);

impl Multipliers {
    fn get(&self, p: &Param) -> f64 {
        self.0.get(p).copied().unwrap_or(1.0)
    }

    fn times(&mut self, other: &Multipliers) {
        for (p, &f) in &other.0 {
            *self.0.entry(p.clone()).or_insert(1.0) *= f;
        }
    }
}

/// One segment attribute: its values with their traffic mix and per-arm effects.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SegmentAttribute {
    pub attribute: String,
    /// (value, share) with shares summing to 1.
    pub mix: Vec<(String, f64)>,
    /// value → arm → multipliers.
    pub effects: BTreeMap<String, BTreeMap<String, Multipliers>>,
}

/// A per-task effort known before assignment: the router sends its estimate as a numeric
/// attribute (a covariate), and the task's cycle time scales with it in every arm.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Effort {
    /// The assignment attribute that carries the estimate.
    pub attribute: String,
    /// The estimate's mean; a task whose estimate is `mean` takes the arm's cycle time.
    pub mean: f64,
    /// The log-scale sd of the estimate (log-normal with mean `mean`).
    pub sigma: f64,
}

impl Effort {
    /// Draws one task's estimate.
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let median = self.mean * (-self.sigma * self.sigma / 2.0).exp();
        Dist::Lognormal {
            median,
            sigma: self.sigma,
        }
        .sample(rng)
    }
}

/// A change of the model from a task index on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftEvent {
    pub at_task: usize,
    /// The arm affected; `None` for every arm.
    pub arm: Option<String>,
    pub multiply: Multipliers,
    /// A new model version reported with the arm's outcomes from then on.
    pub model_version: Option<String>,
}

/// A change of one segment attribute's traffic mix from a task index on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MixChange {
    pub at_task: usize,
    pub attribute: String,
    pub mix: Vec<(String, f64)>,
}

/// A validated scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    /// Whether `liftlab demo` drives this scenario's traffic for its example spec.
    pub demo: bool,
    /// The spec document as it will be sent to the server.
    pub spec_document: Value,
    /// The file the spec was read from, when the scenario names one.
    pub spec_path: Option<PathBuf>,
    pub spec: ExperimentSpec,
    pub tasks: usize,
    pub arrivals_per_minute: f64,
    pub outcome_delay_minutes: Dist,
    pub tick_minutes: f64,
    pub batch_size: usize,
    pub human_cost_per_hour: f64,
    /// Durations (cycle time, human minutes) are in this unit.
    pub duration_unit: DurationUnit,
    pub human_share: Vec<(HandledBy, f64)>,
    /// Constant attributes sent with every assignment (for targeting).
    pub attributes: BTreeMap<String, String>,
    /// The per-task effort estimate sent at assignment, if the scenario has one.
    pub effort: Option<Effort>,
    /// (spec metric key, quantity), in the spec's metric order.
    pub metrics: Vec<(String, Quantity)>,
    pub arms: BTreeMap<String, ArmModel>,
    pub segments: Vec<SegmentAttribute>,
    pub drift: Vec<DriftEvent>,
    pub mix_changes: Vec<MixChange>,
}

/// The simulated outcome of one task.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskDraw {
    /// (metric key, value), binary values as 0/1.
    pub metrics: Vec<(String, f64)>,
    pub handled_by: HandledBy,
    pub model_version: Option<String>,
}

/// Everything that is in force at one task index: the segment mixes and the drift so far.
#[derive(Clone, Debug)]
struct Regime<'a> {
    mixes: Vec<&'a [(String, f64)]>,
    drift: BTreeMap<&'a str, Multipliers>,
    drift_all: Multipliers,
    versions: BTreeMap<&'a str, &'a str>,
}

/// Problems found in a scenario document, each at a JSON pointer.
#[derive(Debug, Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    fn push(&mut self, pointer: impl Into<String>, message: impl Into<String>) {
        self.0.push((pointer.into(), message.into()));
    }
}

impl Scenario {
    /// Reads and validates a scenario file; a spec given as a path is resolved against the
    /// scenario's directory.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the scenario {}", path.display()))?;
        let document: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fallback = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".to_string());
        Scenario::parse(&document, base, &fallback)
            .with_context(|| format!("invalid scenario {}", path.display()))
    }

    /// Validates a scenario document, listing every problem with its pointer.
    pub fn parse(document: &Value, base: &Path, fallback_name: &str) -> anyhow::Result<Scenario> {
        let mut problems = Problems::default();
        let Some(top) = document.as_object() else {
            bail!("the scenario must be a JSON object");
        };
        const FIELDS: &[&str] = &[
            "name",
            "description",
            "demo",
            "spec",
            "duration_unit",
            "tasks",
            "arrivals_per_minute",
            "outcome_delay_minutes",
            "tick_minutes",
            "batch_size",
            "human_cost_per_hour",
            "human_share",
            "attributes",
            "effort",
            "metrics",
            "arms",
            "segments",
            "drift",
            "mix_changes",
        ];
        unknown_fields(top, "", FIELDS, &mut problems);

        let name =
            opt_string(top, "", "name", &mut problems).unwrap_or_else(|| fallback_name.to_string());
        let description = opt_string(top, "", "description", &mut problems);
        let demo = match top.get("demo") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                problems.push("/demo", "must be true or false");
                false
            }
        };
        let (spec_document, spec, spec_path) = match load_spec(top.get("spec"), base) {
            Ok(pair) => pair,
            Err(message) => {
                problems.push("/spec", message);
                return Err(report(problems));
            }
        };

        let tasks = match top.get("tasks") {
            None => {
                problems.push("/tasks", "is required: the number of tasks to simulate");
                0
            }
            Some(v) => whole(v, "/tasks", 1, 10_000_000, &mut problems),
        };
        let arrivals_per_minute = positive_number(
            top.get("arrivals_per_minute"),
            "/arrivals_per_minute",
            10.0,
            &mut problems,
        );
        let outcome_delay_minutes = match top.get("outcome_delay_minutes") {
            None => Dist::Constant(0.0),
            Some(v) => parse_dist(v, "/outcome_delay_minutes", true, &mut problems),
        };
        let tick_minutes =
            positive_number(top.get("tick_minutes"), "/tick_minutes", 5.0, &mut problems);
        let batch_size = match top.get("batch_size") {
            None => 500,
            Some(v) => whole(v, "/batch_size", 1, 100_000, &mut problems),
        };
        let human_cost_per_hour = match top.get("human_cost_per_hour") {
            None => spec.roi().map(|r| r.human_cost_per_hour()).unwrap_or(0.0),
            Some(v) => non_negative(v, "/human_cost_per_hour", &mut problems),
        };
        let duration_unit = match top.get("duration_unit") {
            None => spec
                .roi()
                .map_or(DurationUnit::Minutes, |r| r.duration_unit()),
            Some(v) => match serde_json::from_value::<DurationUnit>(v.clone()) {
                Ok(unit) => unit,
                Err(_) => {
                    problems.push("/duration_unit", "must be seconds, minutes or hours");
                    DurationUnit::Minutes
                }
            },
        };
        let human_share = match top.get("human_share") {
            None => DEFAULT_HUMAN_SHARE.to_vec(),
            Some(v) => parse_human_share(v, &mut problems),
        };
        let attributes = match top.get("attributes") {
            None => BTreeMap::new(),
            Some(v) => parse_attributes(v, &mut problems),
        };
        let rates = rate_names(top.get("arms"));
        let metrics = parse_metric_map(top.get("metrics"), &spec, &rates, &mut problems);
        let arms = parse_arms(top.get("arms"), &spec, &metrics, &mut problems);
        let segments = match top.get("segments") {
            None => Vec::new(),
            Some(v) => parse_segments(v, &spec, &rates, &mut problems),
        };
        let drift = match top.get("drift") {
            None => Vec::new(),
            Some(v) => parse_drift(v, &spec, tasks, &rates, &mut problems),
        };
        let mix_changes = match top.get("mix_changes") {
            None => Vec::new(),
            Some(v) => parse_mix_changes(v, &segments, tasks, &mut problems),
        };
        let effort = top
            .get("effort")
            .and_then(|v| parse_effort(v, &attributes, &segments, &mut problems));
        if metrics.iter().any(|(_, q)| *q == Quantity::Cost)
            && top.get("human_cost_per_hour").is_none()
            && spec.roi().is_none()
        {
            problems.push(
                "/human_cost_per_hour",
                "is required when a metric is fed from cost (or give the spec an roi)",
            );
        }
        if !problems.0.is_empty() {
            return Err(report(problems));
        }
        Ok(Scenario {
            name,
            description,
            demo,
            spec_document,
            spec_path,
            spec,
            tasks,
            arrivals_per_minute,
            outcome_delay_minutes,
            tick_minutes,
            batch_size,
            human_cost_per_hour,
            duration_unit,
            human_share,
            attributes,
            effort,
            metrics,
            arms,
            segments,
            drift,
            mix_changes,
        })
    }

    /// A generic scenario for a spec that has none: the baseline is a human workflow and each
    /// treatment an AI-assisted one that is somewhat faster and cheaper. The demo uses it.
    pub fn generic(spec_document: Value, tasks: usize) -> anyhow::Result<Scenario> {
        let spec = ExperimentSpec::parse(&spec_document)
            .map_err(|e| anyhow::anyhow!("the spec is invalid: {e}"))?;
        let mut arms = Map::new();
        let mut treatment = 0_u32;
        // A 42-minute median cycle time, in the spec's duration unit.
        let unit = spec
            .roi()
            .map_or(DurationUnit::Minutes, |r| r.duration_unit());
        let median = 42.0 * unit.per_hour() / 60.0;
        // Every binary metric gets its own rate: favourable outcomes are common, unfavourable rare.
        let binary: Vec<(&str, bool)> = spec
            .metrics()
            .iter()
            .filter(|m| m.kind() == MetricKind::Binary)
            // A key that names a built-in quantity or parameter is fed from that instead.
            .filter(|m| {
                Quantity::parse(m.key(), &[]).is_none() && Param::parse(m.key(), &[]).is_none()
            })
            .map(|m| (m.key(), m.direction() == Direction::Increase))
            .collect();
        for arm in spec.arms() {
            let gain = if arm.role() == ArmRole::Baseline {
                0.0
            } else {
                0.08 * f64::from(treatment + 1)
            };
            let rates: Map<String, Value> = binary
                .iter()
                .map(|&(key, favourable)| {
                    let p = if favourable {
                        (0.85 + gain / 4.0).min(0.99)
                    } else {
                        0.08 * (1.0 - gain / 2.0)
                    };
                    (key.to_string(), Value::from(p))
                })
                .collect();
            let mut model = if arm.role() == ArmRole::Baseline {
                serde_json::json!({
                    "cycle_time": {"lognormal": {"median": median, "sigma": 0.6}},
                    "escalation": 0.10,
                    "quality": 0.88,
                    "ai_cost": {"constant": 0.0},
                    "touches": 2.0,
                    "score": {"normal": {"mean": 4.0, "sd": 0.8}},
                    "handled_by": {"human": 1.0}
                })
            } else {
                treatment += 1;
                // Each further treatment is a little better than the one before.
                let gain = 0.08 * f64::from(treatment);
                serde_json::json!({
                    "cycle_time": {"lognormal": {"median": median * (1.0 - gain), "sigma": 0.6}},
                    "escalation": 0.10 * (1.0 - gain / 2.0),
                    "quality": (0.88 + gain / 4.0).min(0.99),
                    "ai_cost": {"lognormal": {"median": 0.04, "sigma": 0.3}},
                    "touches": 2.0 * (1.0 - gain),
                    "score": {"normal": {"mean": 4.0 + gain, "sd": 0.8}},
                    "handled_by": {"ai": 0.6, "hybrid": 0.3, "human": 0.1}
                })
            };
            if let Some(object) = model.as_object_mut() {
                object.insert("rates".to_string(), Value::Object(rates));
            }
            arms.insert(arm.key().to_string(), model);
        }
        // Targeted attributes get an allowed value; segment attributes an even mix of values.
        let rules = spec.targeting().rules();
        let attributes: Map<String, Value> = rules
            .iter()
            .filter(|(k, _)| !spec.segments().contains(k))
            .filter_map(|(k, allowed)| {
                allowed
                    .iter()
                    .next()
                    .map(|v| (k.clone(), Value::String(v.clone())))
            })
            .collect();
        let segments: Vec<Value> = spec
            .segments()
            .iter()
            .map(|attribute| {
                let values: Vec<String> = match rules.get(attribute) {
                    Some(allowed) => allowed.iter().cloned().collect(),
                    None => typical_values(attribute),
                };
                let share = 1.0 / count(values.len());
                let mix: Map<String, Value> = values
                    .into_iter()
                    .map(|v| (v, Value::from(share)))
                    .collect();
                serde_json::json!({"attribute": attribute, "mix": mix})
            })
            .collect();
        let mut document = serde_json::json!({
            "name": format!("generic traffic for {}", spec.key()),
            "spec": spec_document,
            "tasks": tasks,
            "arrivals_per_minute": 20.0,
            "outcome_delay_minutes": {"exponential": {"mean": 20.0}},
            "human_cost_per_hour": spec.roi().map(|r| r.human_cost_per_hour()).unwrap_or(45.0),
            "attributes": attributes,
            "segments": segments,
            "arms": arms,
        });
        // A spec with a covariate gets a router that sends it: the task's effort estimate.
        if let Some(attribute) = spec.metrics().iter().find_map(|m| m.covariate()) {
            document["effort"] =
                serde_json::json!({"attribute": attribute, "mean": median, "sigma": 0.5});
        }
        Scenario::parse(&document, Path::new("."), spec.key())
    }

    /// The scenario with its experiment renamed (the spec's key replaced).
    pub fn renamed(mut self, key: &str) -> anyhow::Result<Scenario> {
        if let Some(object) = self.spec_document.as_object_mut() {
            object.insert("key".to_string(), Value::String(key.to_string()));
        }
        self.spec = ExperimentSpec::parse(&self.spec_document)
            .map_err(|e| anyhow::anyhow!("the renamed spec is invalid: {e}"))?;
        Ok(self)
    }

    /// The attributes to send with the assignment of task `index`, segment values drawn from
    /// the mix in force at that index, then the effort estimate (as the shortest text that
    /// reads back as the same number), if the scenario has one.
    pub fn draw_attributes<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        index: usize,
    ) -> BTreeMap<String, String> {
        let regime = self.regime(index);
        let mut attributes = self.attributes.clone();
        for (segment, mix) in self.segments.iter().zip(&regime.mixes) {
            let u: f64 = rng.random();
            attributes.insert(segment.attribute.clone(), pick(mix, u).to_string());
        }
        if let Some(effort) = &self.effort {
            attributes.insert(effort.attribute.clone(), effort.sample(rng).to_string());
        }
        attributes
    }

    /// The attributes of an assignment request as JSON: the effort estimate as a number, as a
    /// router sends a numeric covariate, every other attribute as a string.
    pub fn assignment_attributes(&self, attributes: &BTreeMap<String, String>) -> Value {
        let effort = self.effort.as_ref().map(|e| e.attribute.as_str());
        Value::Object(
            attributes
                .iter()
                .map(|(k, v)| {
                    let number = (Some(k.as_str()) == effort)
                        .then(|| v.parse::<f64>().ok())
                        .flatten()
                        .and_then(serde_json::Number::from_f64);
                    let value = number.map_or_else(|| Value::String(v.clone()), Value::Number);
                    (k.clone(), value)
                })
                .collect(),
        )
    }

    /// The factor a task's cycle time is scaled by: its effort estimate over the mean (1
    /// without effort). Its mean is 1, so the truth is that of the arm's model.
    fn effort_factor(&self, attributes: &BTreeMap<String, String>) -> f64 {
        self.effort
            .as_ref()
            .and_then(|e| {
                let estimate: f64 = attributes.get(&e.attribute)?.parse().ok()?;
                Some(estimate / e.mean)
            })
            .unwrap_or(1.0)
    }

    /// Draws the outcome of task `index` served by `arm`, with segment values `attributes`.
    pub fn draw<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        index: usize,
        arm: &str,
        attributes: &BTreeMap<String, String>,
    ) -> anyhow::Result<TaskDraw> {
        let Some(model) = self.arms.get(arm) else {
            bail!("the server served arm {arm:?}, which the scenario does not model");
        };
        let regime = self.regime(index);
        let m = self.multipliers(&regime, arm, |attribute| {
            attributes.get(attribute).map(String::as_str)
        });
        let handled_by = pick_handled(&model.handled_by, rng.random());
        // Every quantity is drawn for every task so that the stream of random numbers does not
        // depend on which metrics the spec declares.
        let effort = self.effort_factor(attributes);
        let cycle = model
            .cycle_time
            .map(|d| d.sample(rng) * m.get(&Param::CycleTime) * effort);
        let escalated =
            rng.random::<f64>() < probability(model.escalation, m.get(&Param::Escalation));
        let quality = rng.random::<f64>() < probability(model.quality, m.get(&Param::Quality));
        let ai_cost = model.ai_cost.sample(rng) * m.get(&Param::AiCost);
        let touches = model
            .touches
            .map(|mean| poisson(rng, mean * m.get(&Param::Touches)));
        let score = model.score.map(|d| d.sample(rng) * m.get(&Param::Score));
        let rates: BTreeMap<&str, bool> = model
            .rates
            .iter()
            .map(|(name, &p)| {
                let factor = m.get(&Param::Rate(name.clone()));
                (name.as_str(), rng.random::<f64>() < probability(p, factor))
            })
            .collect();
        let share = share_of(&self.human_share, handled_by);
        let human_minutes = cycle.map(|c| c * share);
        let mut metrics = Vec::with_capacity(self.metrics.len());
        for (key, quantity) in &self.metrics {
            let value = match quantity {
                Quantity::CycleTime => cycle,
                Quantity::Escalated => Some(f64::from(u8::from(escalated))),
                Quantity::Quality => Some(f64::from(u8::from(quality))),
                Quantity::AiCost => Some(ai_cost),
                Quantity::HumanMinutes => human_minutes,
                Quantity::Cost => human_minutes.map(|h| {
                    ai_cost + h * self.human_cost_per_hour / self.duration_unit.per_hour()
                }),
                Quantity::Touches => touches,
                Quantity::Score => score,
                Quantity::Rate(name) => rates
                    .get(name.as_str())
                    .map(|&hit| f64::from(u8::from(hit))),
            };
            // Parsing checked that every arm models what its metrics need.
            let Some(value) = value else {
                bail!("arm {arm} has no model for {quantity}, which metric {key} needs");
            };
            metrics.push((key.clone(), value));
        }
        let model_version = regime
            .versions
            .get(arm)
            .map(|v| (*v).to_string())
            .or_else(|| model.model_version.clone());
        Ok(TaskDraw {
            metrics,
            handled_by,
            model_version,
        })
    }

    /// The exact expected value of `quantity` for `arm`, averaged over task indices
    /// `from..to` and over the segment mix in force at each index. With `segment` set to
    /// (attribute, value), the average is over that segment's tasks only.
    pub fn truth(
        &self,
        arm: &str,
        quantity: &Quantity,
        from: usize,
        to: usize,
        segment: Option<(&str, &str)>,
    ) -> Option<f64> {
        let model = self.arms.get(arm)?;
        let mut total = 0.0;
        let mut weight = 0.0;
        for (start, end) in self.phases(from, to) {
            let regime = self.regime(start);
            let length = count(end - start);
            for (combo, p) in self.combos(&regime) {
                if let Some((attribute, value)) = segment {
                    let position = self
                        .segments
                        .iter()
                        .position(|s| s.attribute == attribute)?;
                    if combo[position] != value {
                        continue;
                    }
                }
                let m = self.multipliers(&regime, arm, |attribute| {
                    self.segments
                        .iter()
                        .position(|s| s.attribute == attribute)
                        .map(|i| combo[i])
                });
                let y = self.expected(model, quantity, &m)?;
                total += length * p * y;
                weight += length * p;
            }
        }
        (weight > 0.0).then(|| total / weight)
    }

    /// The expected value of a quantity under fixed multipliers.
    fn expected(&self, model: &ArmModel, quantity: &Quantity, m: &Multipliers) -> Option<f64> {
        let cycle = model
            .cycle_time
            .map(|d| d.mean() * m.get(&Param::CycleTime));
        let share: f64 = model
            .handled_by
            .iter()
            .map(|&(who, p)| p * share_of(&self.human_share, who))
            .sum();
        let ai_cost = model.ai_cost.mean() * m.get(&Param::AiCost);
        match quantity {
            Quantity::CycleTime => cycle,
            Quantity::Escalated => Some(probability(model.escalation, m.get(&Param::Escalation))),
            Quantity::Quality => Some(probability(model.quality, m.get(&Param::Quality))),
            Quantity::AiCost => Some(ai_cost),
            Quantity::HumanMinutes => cycle.map(|c| c * share),
            Quantity::Cost => cycle.map(|c| {
                ai_cost + c * share * self.human_cost_per_hour / self.duration_unit.per_hour()
            }),
            Quantity::Touches => model.touches.map(|t| t * m.get(&Param::Touches)),
            Quantity::Score => model.score.map(|d| d.mean() * m.get(&Param::Score)),
            Quantity::Rate(name) => model
                .rates
                .get(name)
                .map(|&p| probability(p, m.get(&Param::Rate(name.clone())))),
        }
    }

    /// The quantity a spec metric is fed from.
    pub fn quantity_of(&self, metric: &str) -> Option<Quantity> {
        self.metrics
            .iter()
            .find(|(k, _)| k == metric)
            .map(|(_, q)| q.clone())
    }

    /// The task indices at which anything changes, cut into constant stretches of `from..to`.
    fn phases(&self, from: usize, to: usize) -> Vec<(usize, usize)> {
        let mut cuts: Vec<usize> = self
            .drift
            .iter()
            .map(|d| d.at_task)
            .chain(self.mix_changes.iter().map(|c| c.at_task))
            .filter(|&at| from < at && at < to)
            .collect();
        cuts.push(from);
        cuts.push(to);
        cuts.sort_unstable();
        cuts.dedup();
        cuts.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// Every combination of segment values with its probability under `regime`.
    fn combos<'a>(&'a self, regime: &Regime<'a>) -> Vec<(Vec<&'a str>, f64)> {
        let mut combos: Vec<(Vec<&str>, f64)> = vec![(Vec::new(), 1.0)];
        for mix in &regime.mixes {
            let mut next = Vec::with_capacity(combos.len() * mix.len());
            for (values, p) in &combos {
                for (value, share) in mix.iter() {
                    let mut values = values.clone();
                    values.push(value.as_str());
                    next.push((values, p * share));
                }
            }
            combos = next;
        }
        combos
    }

    fn regime(&self, index: usize) -> Regime<'_> {
        let mut mixes: Vec<&[(String, f64)]> =
            self.segments.iter().map(|s| s.mix.as_slice()).collect();
        // Changes are sorted by index, so the last one that applies wins.
        for change in self.mix_changes.iter().filter(|c| c.at_task <= index) {
            if let Some(i) = self
                .segments
                .iter()
                .position(|s| s.attribute == change.attribute)
            {
                mixes[i] = &change.mix;
            }
        }
        let mut drift: BTreeMap<&str, Multipliers> = BTreeMap::new();
        let mut drift_all = Multipliers::default();
        let mut versions = BTreeMap::new();
        for event in self.drift.iter().filter(|d| d.at_task <= index) {
            match &event.arm {
                Some(arm) => {
                    drift
                        .entry(arm.as_str())
                        .or_default()
                        .times(&event.multiply);
                    if let Some(v) = &event.model_version {
                        versions.insert(arm.as_str(), v.as_str());
                    }
                }
                None => drift_all.times(&event.multiply),
            }
        }
        Regime {
            mixes,
            drift,
            drift_all,
            versions,
        }
    }

    fn multipliers<'a>(
        &self,
        regime: &Regime<'_>,
        arm: &str,
        value_of: impl Fn(&str) -> Option<&'a str>,
    ) -> Multipliers {
        let mut m = regime.drift_all.clone();
        if let Some(d) = regime.drift.get(arm) {
            m.times(d);
        }
        for segment in &self.segments {
            let Some(value) = value_of(&segment.attribute) else {
                continue;
            };
            if let Some(effect) = segment
                .effects
                .get(value)
                .and_then(|by_arm| by_arm.get(arm))
            {
                m.times(effect);
            }
        }
        m
    }
}

/// Plausible values of a segment attribute, for generic traffic.
fn typical_values(attribute: &str) -> Vec<String> {
    let values: &[&str] = match attribute {
        "channel" => &["email", "chat", "phone"],
        "priority" => &["low", "normal", "high"],
        "language" => &["en", "de", "es"],
        "region" => &["emea", "amer", "apac"],
        "tier" | "customer_tier" => &["standard", "premium"],
        _ => &["a", "b"],
    };
    values.iter().map(|v| (*v).to_string()).collect()
}

/// A probability scaled by a multiplier, kept in [0, 1].
fn probability(p: f64, m: f64) -> f64 {
    (p * m).clamp(0.0, 1.0)
}

fn share_of(shares: &[(HandledBy, f64)], who: HandledBy) -> f64 {
    shares
        .iter()
        .find(|(w, _)| *w == who)
        .map_or(0.0, |(_, s)| *s)
}

fn poisson<R: Rng + ?Sized>(rng: &mut R, mean: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    Poisson::new(mean)
        .map(|d| d.sample(rng))
        .unwrap_or(mean.round())
}

/// The value whose cumulative share first exceeds `u` (the last one when rounding leaves a gap).
fn pick(mix: &[(String, f64)], u: f64) -> &str {
    let mut cumulative = 0.0;
    for (value, share) in mix {
        cumulative += share;
        if u < cumulative {
            return value;
        }
    }
    mix.last().map_or("", |(v, _)| v.as_str())
}

fn pick_handled(mix: &[(HandledBy, f64)], u: f64) -> HandledBy {
    let mut cumulative = 0.0;
    for &(who, share) in mix {
        cumulative += share;
        if u < cumulative {
            return who;
        }
    }
    mix.last().map_or(HandledBy::Human, |(w, _)| *w)
}

/// A task count as a weight.
fn count(n: usize) -> f64 {
    // Scenarios have at most 10 million tasks, far below 2^53, where usize → f64 is exact.
    n as f64
}

fn report(problems: Problems) -> anyhow::Error {
    let lines: Vec<String> = problems
        .0
        .iter()
        .map(|(pointer, message)| {
            let at = if pointer.is_empty() {
                "(document)"
            } else {
                pointer
            };
            format!("  {at}: {message}")
        })
        .collect();
    anyhow::anyhow!(
        "{} problem{}:\n{}",
        lines.len(),
        if lines.len() == 1 { "" } else { "s" },
        lines.join("\n")
    )
}

fn pointer(base: &str, token: &str) -> String {
    format!("{base}/{}", token.replace('~', "~0").replace('/', "~1"))
}

fn unknown_fields(
    object: &Map<String, Value>,
    at: &str,
    allowed: &[&str],
    problems: &mut Problems,
) {
    for key in object.keys() {
        if !allowed.contains(&key.as_str()) {
            problems.push(
                pointer(at, key),
                format!("unknown field; expected one of {}", allowed.join(", ")),
            );
        }
    }
}

fn opt_string(
    object: &Map<String, Value>,
    at: &str,
    field: &str,
    problems: &mut Problems,
) -> Option<String> {
    match object.get(field) {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            problems.push(pointer(at, field), "must be a string");
            None
        }
    }
}

fn whole(v: &Value, at: &str, min: u64, max: u64, problems: &mut Problems) -> usize {
    match v
        .as_u64()
        .filter(|n| min <= *n && *n <= max)
        .and_then(|n| usize::try_from(n).ok())
    {
        Some(n) => n,
        None => {
            problems.push(at, format!("must be a whole number from {min} to {max}"));
            0
        }
    }
}

fn number(v: &Value, at: &str, problems: &mut Problems) -> Option<f64> {
    match v.as_f64().filter(|x| x.is_finite()) {
        Some(x) => Some(x),
        None => {
            problems.push(at, "must be a finite number");
            None
        }
    }
}

fn non_negative(v: &Value, at: &str, problems: &mut Problems) -> f64 {
    match number(v, at, problems) {
        Some(x) if x >= 0.0 => x,
        Some(_) => {
            problems.push(at, "must be ≥ 0");
            0.0
        }
        None => 0.0,
    }
}

fn positive_number(v: Option<&Value>, at: &str, default: f64, problems: &mut Problems) -> f64 {
    let Some(v) = v else {
        return default;
    };
    match number(v, at, problems) {
        Some(x) if x > 0.0 => x,
        Some(_) => {
            problems.push(at, "must be > 0");
            default
        }
        None => default,
    }
}

fn probability_value(v: &Value, at: &str, problems: &mut Problems) -> f64 {
    match number(v, at, problems) {
        Some(x) if (0.0..=1.0).contains(&x) => x,
        Some(_) => {
            problems.push(at, "must be a probability in [0, 1]");
            0.0
        }
        None => 0.0,
    }
}

fn parse_dist(v: &Value, at: &str, must_be_non_negative: bool, problems: &mut Problems) -> Dist {
    const SHAPES: &str = "{\"constant\": x}, {\"lognormal\": {\"median\", \"sigma\"}}, {\"exponential\": {\"mean\"}} or {\"normal\": {\"mean\", \"sd\"}}";
    let fallback = Dist::Constant(0.0);
    let Some((kind, params)) = v
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.iter().next())
    else {
        problems.push(at, format!("must be a distribution: {SHAPES}"));
        return fallback;
    };
    let at_kind = pointer(at, kind);
    let field = |name: &str, problems: &mut Problems| -> Option<f64> {
        match params.get(name) {
            Some(x) => number(x, &pointer(&at_kind, name), problems),
            None => {
                problems.push(at_kind.clone(), format!("needs {name}"));
                None
            }
        }
    };
    let dist = match kind.as_str() {
        "constant" => number(params, &at_kind, problems).map(Dist::Constant),
        "lognormal" => {
            if let Some(o) = params.as_object() {
                unknown_fields(o, &at_kind, &["median", "sigma"], problems);
            }
            match (field("median", problems), field("sigma", problems)) {
                (Some(median), Some(sigma)) if median > 0.0 && sigma >= 0.0 => {
                    Some(Dist::Lognormal { median, sigma })
                }
                (Some(_), Some(_)) => {
                    problems.push(at_kind.clone(), "needs median > 0 and sigma ≥ 0");
                    None
                }
                _ => None,
            }
        }
        "exponential" => {
            if let Some(o) = params.as_object() {
                unknown_fields(o, &at_kind, &["mean"], problems);
            }
            match field("mean", problems) {
                Some(mean) if mean > 0.0 => Some(Dist::Exponential { mean }),
                Some(_) => {
                    problems.push(pointer(&at_kind, "mean"), "must be > 0");
                    None
                }
                None => None,
            }
        }
        "normal" => {
            if let Some(o) = params.as_object() {
                unknown_fields(o, &at_kind, &["mean", "sd"], problems);
            }
            match (field("mean", problems), field("sd", problems)) {
                (Some(mean), Some(sd)) if sd >= 0.0 => Some(Dist::Normal { mean, sd }),
                (Some(_), Some(_)) => {
                    problems.push(pointer(&at_kind, "sd"), "must be ≥ 0");
                    None
                }
                _ => None,
            }
        }
        other => {
            problems.push(at, format!("unknown distribution {other:?}; use {SHAPES}"));
            None
        }
    };
    match dist {
        Some(d) if must_be_non_negative && !d.non_negative() => {
            problems.push(
                at,
                "must never be negative: use constant ≥ 0, lognormal or exponential",
            );
            fallback
        }
        Some(d) => d,
        None => fallback,
    }
}

fn load_spec(
    v: Option<&Value>,
    base: &Path,
) -> Result<(Value, ExperimentSpec, Option<PathBuf>), String> {
    let (document, path) = match v {
        None => return Err("is required: an inline experiment spec or the path of one".to_string()),
        Some(Value::String(path)) => {
            let path: PathBuf = base.join(path);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read the spec {}: {e}", path.display()))?;
            let document = serde_json::from_str(&text)
                .map_err(|e| format!("the spec {} is not valid JSON: {e}", path.display()))?;
            (document, Some(path))
        }
        Some(doc @ Value::Object(_)) => (doc.clone(), None),
        Some(_) => return Err("must be an experiment spec object or the path of one".to_string()),
    };
    let spec = ExperimentSpec::parse(&document)
        .map_err(|e| format!("the experiment spec is invalid: {e}"))?;
    Ok((document, spec, path))
}

fn parse_human_share(v: &Value, problems: &mut Problems) -> Vec<(HandledBy, f64)> {
    let mut shares = DEFAULT_HUMAN_SHARE.to_vec();
    let Some(object) = v.as_object() else {
        problems.push(
            "/human_share",
            "must be an object like {\"human\": 1, \"hybrid\": 0.5, \"ai\": 0.1}",
        );
        return shares;
    };
    for (who, share) in object {
        let at = pointer("/human_share", who);
        match handled_by(who) {
            Some(who) => {
                let s = non_negative(share, &at, problems);
                if let Some(slot) = shares.iter_mut().find(|(w, _)| *w == who) {
                    slot.1 = s;
                }
            }
            None => problems.push(at, "must be ai, human or hybrid"),
        }
    }
    shares
}

fn parse_attributes(v: &Value, problems: &mut Problems) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(object) = v.as_object() else {
        problems.push(
            "/attributes",
            "must be an object of attribute → string value",
        );
        return out;
    };
    for (k, value) in object {
        match value.as_str() {
            Some(s) => {
                out.insert(k.clone(), s.to_string());
            }
            None => problems.push(pointer("/attributes", k), "must be a string"),
        }
    }
    out
}

/// The names of the binary rates any arm defines, sorted.
fn rate_names(arms: Option<&Value>) -> Vec<String> {
    let mut names: Vec<String> = arms
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|o| o.values())
        .filter_map(|model| model.get("rates").and_then(Value::as_object))
        .flat_map(|rates| rates.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn parse_metric_map(
    v: Option<&Value>,
    spec: &ExperimentSpec,
    rates: &[String],
    problems: &mut Problems,
) -> Vec<(String, Quantity)> {
    let given = match v {
        None => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => {
            problems.push(
                "/metrics",
                "must be an object of spec metric → simulated quantity",
            );
            Map::new()
        }
    };
    for key in given.keys() {
        match spec.metric(key) {
            None => problems.push(pointer("/metrics", key), "is not a metric of the spec"),
            Some(m) if m.ratio().is_some() => problems.push(
                pointer("/metrics", key),
                "is a ratio metric: outcomes send its numerator and denominator",
            ),
            Some(_) => {}
        }
    }
    let names: Vec<&str> = Quantity::BUILTIN
        .iter()
        .map(|q| q.name())
        .chain(rates.iter().map(String::as_str))
        .collect();
    spec.metrics()
        .iter()
        // A ratio metric is computed from its parts; outcomes never carry it.
        .filter(|metric| metric.ratio().is_none())
        .map(|metric| {
            let at = pointer("/metrics", metric.key());
            let quantity = match given.get(metric.key()) {
                None => {
                    Quantity::default_for(metric.key(), metric.kind(), metric.direction(), rates)
                }
                Some(Value::String(name)) => match Quantity::parse(name, rates) {
                    Some(q) => q,
                    None => {
                        problems.push(
                            at.clone(),
                            format!("unknown quantity {name:?}; use one of {}", names.join(", ")),
                        );
                        Quantity::default_for(
                            metric.key(),
                            metric.kind(),
                            metric.direction(),
                            rates,
                        )
                    }
                },
                Some(_) => {
                    problems.push(at.clone(), "must be the name of a simulated quantity");
                    Quantity::default_for(metric.key(), metric.kind(), metric.direction(), rates)
                }
            };
            if !quantity.fits(metric.kind()) {
                problems.push(
                    at,
                    format!(
                        "quantity {quantity} cannot feed a metric of kind {:?}",
                        metric.kind()
                    )
                    .to_lowercase(),
                );
            }
            (metric.key().to_string(), quantity)
        })
        .collect()
}

fn parse_arms(
    v: Option<&Value>,
    spec: &ExperimentSpec,
    metrics: &[(String, Quantity)],
    problems: &mut Problems,
) -> BTreeMap<String, ArmModel> {
    let mut out = BTreeMap::new();
    let Some(object) = v.and_then(Value::as_object) else {
        problems.push(
            "/arms",
            "is required: an object of arm key → ground-truth model",
        );
        return out;
    };
    for key in object.keys() {
        if spec.arm(key).is_none() {
            problems.push(pointer("/arms", key), "is not an arm of the spec");
        }
    }
    for arm in spec.arms() {
        let at = pointer("/arms", arm.key());
        let Some(model) = object.get(arm.key()) else {
            problems.push(at, "is missing: every arm of the spec needs a model");
            continue;
        };
        let Some(model) = model.as_object() else {
            problems.push(at, "must be an object");
            continue;
        };
        unknown_fields(
            model,
            &at,
            &[
                "cycle_time",
                "escalation",
                "quality",
                "ai_cost",
                "touches",
                "score",
                "rates",
                "handled_by",
                "model_version",
            ],
            problems,
        );
        let cycle_time = model
            .get("cycle_time")
            .map(|d| parse_dist(d, &pointer(&at, "cycle_time"), true, problems));
        let escalation = model.get("escalation").map_or(0.0, |p| {
            probability_value(p, &pointer(&at, "escalation"), problems)
        });
        let quality = model.get("quality").map_or(1.0, |p| {
            probability_value(p, &pointer(&at, "quality"), problems)
        });
        let ai_cost = model.get("ai_cost").map_or(Dist::Constant(0.0), |d| {
            parse_dist(d, &pointer(&at, "ai_cost"), true, problems)
        });
        let touches = model
            .get("touches")
            .map(|t| non_negative(t, &pointer(&at, "touches"), problems));
        let score = model
            .get("score")
            .map(|d| parse_dist(d, &pointer(&at, "score"), false, problems));
        let handled_by = match model.get("handled_by") {
            None if arm.is_baseline() => vec![(HandledBy::Human, 1.0)],
            None => vec![(HandledBy::Ai, 1.0)],
            Some(mix) => parse_handled_mix(mix, &pointer(&at, "handled_by"), problems),
        };
        let model_version = opt_string(model, &at, "model_version", problems);
        let mut rates = BTreeMap::new();
        if let Some(r) = model.get("rates") {
            let at_r = pointer(&at, "rates");
            match r.as_object() {
                Some(r) => {
                    for (name, p) in r {
                        if Param::BUILTIN.iter().any(|b| b.name() == name)
                            || Quantity::BUILTIN.iter().any(|b| b.name() == name)
                        {
                            problems.push(
                                pointer(&at_r, name),
                                "is the name of a built-in quantity; choose another",
                            );
                        }
                        rates.insert(
                            name.clone(),
                            probability_value(p, &pointer(&at_r, name), problems),
                        );
                    }
                }
                None => problems.push(at_r, "must be an object of rate name → probability"),
            }
        }
        let model = ArmModel {
            cycle_time,
            escalation,
            quality,
            ai_cost,
            touches,
            score,
            rates,
            handled_by,
            model_version,
        };
        for (metric, quantity) in metrics {
            let missing = match quantity {
                Quantity::CycleTime | Quantity::HumanMinutes | Quantity::Cost => {
                    model.cycle_time.is_none().then_some("cycle_time")
                }
                Quantity::Touches => model.touches.is_none().then_some("touches"),
                Quantity::Score => model.score.is_none().then_some("score"),
                Quantity::Rate(name) => (!model.rates.contains_key(name)).then_some("a rate"),
                Quantity::Escalated | Quantity::Quality | Quantity::AiCost => None,
            };
            if let Some(field) = missing {
                let field = match quantity {
                    Quantity::Rate(name) => format!("rates.{name}"),
                    _ => field.to_string(),
                };
                problems.push(
                    at.clone(),
                    format!("needs {field}, which metric {metric} is fed from"),
                );
            }
        }
        out.insert(arm.key().to_string(), model);
    }
    out
}

fn parse_handled_mix(v: &Value, at: &str, problems: &mut Problems) -> Vec<(HandledBy, f64)> {
    let Some(object) = v.as_object().filter(|o| !o.is_empty()) else {
        problems.push(
            at,
            "must be an object like {\"ai\": 0.7, \"hybrid\": 0.2, \"human\": 0.1}",
        );
        return vec![(HandledBy::Human, 1.0)];
    };
    let mut mix = Vec::new();
    for (who, p) in object {
        match handled_by(who) {
            Some(w) => mix.push((w, probability_value(p, &pointer(at, who), problems))),
            None => problems.push(pointer(at, who), "must be ai, human or hybrid"),
        }
    }
    check_sum(mix.iter().map(|(_, p)| *p), at, problems);
    mix
}

fn check_sum(shares: impl Iterator<Item = f64>, at: &str, problems: &mut Problems) {
    let sum: f64 = shares.sum();
    if (sum - 1.0).abs() > 1e-9 {
        problems.push(at, format!("shares must sum to 1, not {sum}"));
    }
}

fn parse_mix(v: &Value, at: &str, problems: &mut Problems) -> Vec<(String, f64)> {
    let Some(object) = v.as_object().filter(|o| !o.is_empty()) else {
        problems.push(at, "must be an object of value → share");
        return Vec::new();
    };
    let mix: Vec<(String, f64)> = object
        .iter()
        .map(|(value, share)| {
            (
                value.clone(),
                probability_value(share, &pointer(at, value), problems),
            )
        })
        .collect();
    check_sum(mix.iter().map(|(_, p)| *p), at, problems);
    mix
}

fn parse_multipliers(
    v: &Value,
    at: &str,
    rates: &[String],
    problems: &mut Problems,
) -> Multipliers {
    let mut m = Multipliers::default();
    let Some(object) = v.as_object() else {
        problems.push(at, "must be an object of parameter → factor");
        return m;
    };
    for (name, factor) in object {
        let at = pointer(at, name);
        match Param::parse(name, rates) {
            Some(p) => match number(factor, &at, problems) {
                Some(f) if f >= 0.0 => {
                    m.0.insert(p, f);
                }
                Some(_) => problems.push(at, "must be ≥ 0"),
                None => {}
            },
            None => problems.push(
                at,
                format!(
                    "unknown parameter; use one of {}",
                    Param::BUILTIN
                        .iter()
                        .map(|p| p.name().to_string())
                        .chain(rates.iter().cloned())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }
    m
}

fn parse_effort(
    v: &Value,
    attributes: &BTreeMap<String, String>,
    segments: &[SegmentAttribute],
    problems: &mut Problems,
) -> Option<Effort> {
    let Some(object) = v.as_object() else {
        problems.push(
            "/effort",
            "must be an object: {\"attribute\", \"mean\", \"sigma\"}",
        );
        return None;
    };
    unknown_fields(object, "/effort", &["attribute", "mean", "sigma"], problems);
    let attribute = match object.get("attribute").and_then(Value::as_str) {
        Some(a) if !a.is_empty() => a.to_string(),
        _ => {
            problems.push("/effort/attribute", "is required: the attribute name");
            return None;
        }
    };
    if attributes.contains_key(&attribute) || segments.iter().any(|s| s.attribute == attribute) {
        problems.push(
            "/effort/attribute",
            "is already a constant or segment attribute",
        );
    }
    let mean = match object.get("mean") {
        Some(m) => positive_number(Some(m), "/effort/mean", 1.0, problems),
        None => {
            problems.push("/effort/mean", "is required: the estimate's mean");
            1.0
        }
    };
    let sigma = match object.get("sigma") {
        Some(x) => non_negative(x, "/effort/sigma", problems),
        None => 0.5,
    };
    Some(Effort {
        attribute,
        mean,
        sigma,
    })
}

fn parse_segments(
    v: &Value,
    spec: &ExperimentSpec,
    rates: &[String],
    problems: &mut Problems,
) -> Vec<SegmentAttribute> {
    let Some(items) = v.as_array() else {
        problems.push("/segments", "must be an array");
        return Vec::new();
    };
    let mut out: Vec<SegmentAttribute> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("/segments/{i}");
        let Some(object) = item.as_object() else {
            problems.push(at, "must be an object");
            continue;
        };
        unknown_fields(object, &at, &["attribute", "mix", "effects"], problems);
        let Some(attribute) = object.get("attribute").and_then(Value::as_str) else {
            problems.push(pointer(&at, "attribute"), "is required: the attribute name");
            continue;
        };
        if out.iter().any(|s| s.attribute == attribute) {
            problems.push(pointer(&at, "attribute"), "is listed twice");
        }
        let mix = match object.get("mix") {
            Some(m) => parse_mix(m, &pointer(&at, "mix"), problems),
            None => {
                problems.push(pointer(&at, "mix"), "is required: value → share");
                Vec::new()
            }
        };
        let mut effects = BTreeMap::new();
        if let Some(e) = object.get("effects") {
            let at_e = pointer(&at, "effects");
            match e.as_object() {
                Some(by_value) => {
                    for (value, by_arm) in by_value {
                        let at_v = pointer(&at_e, value);
                        if !mix.iter().any(|(v, _)| v == value) {
                            problems.push(at_v.clone(), "is not a value of the mix");
                        }
                        let Some(by_arm) = by_arm.as_object() else {
                            problems.push(at_v, "must be an object of arm → multipliers");
                            continue;
                        };
                        let mut arms = BTreeMap::new();
                        for (arm, m) in by_arm {
                            let at_a = pointer(&at_v, arm);
                            if spec.arm(arm).is_none() {
                                problems.push(at_a.clone(), "is not an arm of the spec");
                            }
                            arms.insert(arm.clone(), parse_multipliers(m, &at_a, rates, problems));
                        }
                        effects.insert(value.clone(), arms);
                    }
                }
                None => problems.push(at_e, "must be an object of value → arm → multipliers"),
            }
        }
        out.push(SegmentAttribute {
            attribute: attribute.to_string(),
            mix,
            effects,
        });
    }
    out
}

fn parse_drift(
    v: &Value,
    spec: &ExperimentSpec,
    tasks: usize,
    rates: &[String],
    problems: &mut Problems,
) -> Vec<DriftEvent> {
    let Some(items) = v.as_array() else {
        problems.push("/drift", "must be an array");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("/drift/{i}");
        let Some(object) = item.as_object() else {
            problems.push(at, "must be an object");
            continue;
        };
        unknown_fields(
            object,
            &at,
            &["at_task", "arm", "multiply", "model_version"],
            problems,
        );
        let at_task = match object.get("at_task") {
            Some(v) => whole(v, &pointer(&at, "at_task"), 0, 10_000_000, problems),
            None => {
                problems.push(
                    pointer(&at, "at_task"),
                    "is required: the task index the change starts at",
                );
                0
            }
        };
        if at_task >= tasks && tasks > 0 {
            problems.push(
                pointer(&at, "at_task"),
                format!("must be below the number of tasks ({tasks})"),
            );
        }
        let arm = match object.get("arm") {
            None => None,
            Some(Value::String(a)) if spec.arm(a).is_some() => Some(a.clone()),
            Some(_) => {
                problems.push(pointer(&at, "arm"), "must be an arm of the spec");
                None
            }
        };
        let multiply = match object.get("multiply") {
            Some(m) => parse_multipliers(m, &pointer(&at, "multiply"), rates, problems),
            None => {
                problems.push(pointer(&at, "multiply"), "is required: parameter → factor");
                Multipliers::default()
            }
        };
        let model_version = opt_string(object, &at, "model_version", problems);
        out.push(DriftEvent {
            at_task,
            arm,
            multiply,
            model_version,
        });
    }
    out.sort_by_key(|d| d.at_task);
    out
}

fn parse_mix_changes(
    v: &Value,
    segments: &[SegmentAttribute],
    tasks: usize,
    problems: &mut Problems,
) -> Vec<MixChange> {
    let Some(items) = v.as_array() else {
        problems.push("/mix_changes", "must be an array");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("/mix_changes/{i}");
        let Some(object) = item.as_object() else {
            problems.push(at, "must be an object");
            continue;
        };
        unknown_fields(object, &at, &["at_task", "attribute", "mix"], problems);
        let at_task = match object.get("at_task") {
            Some(v) => whole(v, &pointer(&at, "at_task"), 0, 10_000_000, problems),
            None => {
                problems.push(pointer(&at, "at_task"), "is required");
                0
            }
        };
        if at_task >= tasks && tasks > 0 {
            problems.push(
                pointer(&at, "at_task"),
                format!("must be below the number of tasks ({tasks})"),
            );
        }
        let Some(attribute) = object.get("attribute").and_then(Value::as_str) else {
            problems.push(
                pointer(&at, "attribute"),
                "is required: a segment attribute of the scenario",
            );
            continue;
        };
        let Some(segment) = segments.iter().find(|s| s.attribute == attribute) else {
            problems.push(
                pointer(&at, "attribute"),
                "is not a segment attribute of the scenario",
            );
            continue;
        };
        let mix = match object.get("mix") {
            Some(m) => parse_mix(m, &pointer(&at, "mix"), problems),
            None => {
                problems.push(pointer(&at, "mix"), "is required");
                Vec::new()
            }
        };
        for (value, _) in &mix {
            if !segment.mix.iter().any(|(v, _)| v == value) {
                problems.push(
                    pointer(&pointer(&at, "mix"), value),
                    "is not a value of the attribute's mix",
                );
            }
        }
        out.push(MixChange {
            at_task,
            attribute: attribute.to_string(),
            mix,
        });
    }
    out.sort_by_key(|c| c.at_task);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn spec() -> Value {
        serde_json::json!({
            "key": "triage",
            "arms": [
                {"key": "human", "role": "baseline"},
                {"key": "ai", "role": "treatment"}
            ],
            "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai": 0.5}},
            "metrics": [
                {"key": "cycle_time", "kind": "duration", "direction": "decrease", "role": "primary"},
                {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail"},
                {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary"}
            ]
        })
    }

    fn scenario(extra: Value) -> anyhow::Result<Scenario> {
        let mut doc = serde_json::json!({
            "spec": spec(),
            "tasks": 1000,
            "human_cost_per_hour": 60.0,
            "arms": {
                "human": {"cycle_time": {"lognormal": {"median": 40.0, "sigma": 0.5}}, "escalation": 0.1},
                "ai": {
                    "cycle_time": {"lognormal": {"median": 30.0, "sigma": 0.5}},
                    "escalation": 0.08,
                    "ai_cost": {"exponential": {"mean": 0.05}},
                    "handled_by": {"ai": 0.5, "hybrid": 0.5}
                }
            }
        });
        if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                d.insert(k.clone(), v.clone());
            }
        }
        Scenario::parse(&doc, Path::new("."), "test")
    }

    /// The empirical mean of many draws, for checking the analytic truth.
    fn empirical(
        s: &Scenario,
        arm: &str,
        metric: &str,
        from: usize,
        to: usize,
        draws_per_task: usize,
    ) -> f64 {
        let mut rng = StdRng::seed_from_u64(7);
        let mut sum = 0.0;
        let mut n = 0.0;
        for index in from..to {
            for _ in 0..draws_per_task {
                let attributes = s.draw_attributes(&mut rng, index);
                let draw = s.draw(&mut rng, index, arm, &attributes).expect("draw");
                let value = draw
                    .metrics
                    .iter()
                    .find(|(k, _)| k == metric)
                    .expect("metric")
                    .1;
                sum += value;
                n += 1.0;
            }
        }
        sum / n
    }

    fn close(a: f64, b: f64, relative: f64) -> bool {
        (a - b).abs() <= relative * b.abs()
    }

    #[test]
    fn lognormal_mean_is_median_times_exp_half_sigma_squared() {
        // A log-normal with median 1 and sigma 1 has mean e^0.5 = 1.6487212707 (scipy.stats.lognorm(1).mean()).
        let d = Dist::Lognormal {
            median: 1.0,
            sigma: 1.0,
        };
        assert!((d.mean() - 1.648_721_270_7).abs() < 1e-9);
    }

    #[test]
    fn truth_matches_the_empirical_mean_of_draws() {
        let s = scenario(serde_json::json!({})).expect("valid");
        for (arm, metric) in [
            ("human", "cycle_time"),
            ("ai", "cycle_time"),
            ("ai", "escalated"),
            ("ai", "cost"),
            ("human", "cost"),
        ] {
            let q = s.quantity_of(metric).expect("mapped");
            let truth = s.truth(arm, &q, 0, 1000, None).expect("truth");
            let seen = empirical(&s, arm, metric, 0, 1000, 40);
            assert!(
                close(seen, truth, 0.02),
                "{arm}/{metric}: empirical {seen} vs truth {truth}"
            );
        }
    }

    #[test]
    fn truth_follows_segments_drift_and_mix_changes() {
        let s = scenario(serde_json::json!({
            "segments": [{
                "attribute": "region",
                "mix": {"emea": 0.3, "amer": 0.7},
                "effects": {"emea": {"ai": {"cycle_time": 1.5}}}
            }],
            "drift": [{"at_task": 600, "arm": "ai", "multiply": {"escalation": 2.0}, "model_version": "m2"}],
            "mix_changes": [{"at_task": 400, "attribute": "region", "mix": {"emea": 0.8, "amer": 0.2}}]
        }))
        .expect("valid");
        let ct = &Quantity::CycleTime;
        let overall = s.truth("ai", ct, 0, 1000, None).expect("truth");
        let seen = empirical(&s, "ai", "cycle_time", 0, 1000, 40);
        assert!(
            close(seen, overall, 0.02),
            "empirical {seen} vs truth {overall}"
        );
        // Within a segment the mix does not matter, only the segment's effect.
        let base = Dist::Lognormal {
            median: 30.0,
            sigma: 0.5,
        }
        .mean();
        let emea = s
            .truth("ai", ct, 0, 1000, Some(("region", "emea")))
            .expect("truth");
        assert!(close(emea, 1.5 * base, 1e-12));
        let esc_before = s
            .truth("ai", &Quantity::Escalated, 0, 600, None)
            .expect("truth");
        let esc_after = s
            .truth("ai", &Quantity::Escalated, 600, 1000, None)
            .expect("truth");
        assert!(close(esc_before, 0.08, 1e-12) && close(esc_after, 0.16, 1e-12));
        let mut rng = StdRng::seed_from_u64(1);
        let attrs = s.draw_attributes(&mut rng, 700);
        assert_eq!(
            s.draw(&mut rng, 700, "ai", &attrs)
                .expect("draw")
                .model_version
                .as_deref(),
            Some("m2")
        );
        assert_eq!(
            s.draw(&mut rng, 10, "ai", &attrs)
                .expect("draw")
                .model_version,
            None
        );
    }

    #[test]
    fn bad_scenarios_list_every_problem_with_its_pointer() {
        let err = scenario(serde_json::json!({
            "tasks": 0,
            "arms": {"human": {"escalation": 1.5}, "robot": {}},
            "segments": [{"attribute": "region", "mix": {"emea": 0.5}}],
            "surprise": true
        }))
        .expect_err("invalid");
        let text = format!("{err:#}");
        for needle in [
            "/tasks",
            "/arms/robot",
            "/arms/human/escalation",
            "/arms/human: needs cycle_time",
            "/arms/ai: is missing",
            "/segments/0/mix: shares must sum to 1",
            "/surprise: unknown field",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    #[test]
    fn an_effort_estimate_is_sent_as_a_number_and_scales_cycle_time_with_mean_one() {
        let s = scenario(serde_json::json!({
            "effort": {"attribute": "estimated_minutes", "mean": 40.0, "sigma": 0.6}
        }))
        .expect("valid");
        let mut rng = StdRng::seed_from_u64(3);
        let attributes = s.draw_attributes(&mut rng, 0);
        let estimate: f64 = attributes["estimated_minutes"].parse().expect("a number");
        assert_eq!(
            s.assignment_attributes(&attributes)["estimated_minutes"],
            serde_json::json!(estimate)
        );
        // The truth does not change, and the draws still average to it.
        let truth = s
            .truth("ai", &Quantity::CycleTime, 0, 1000, None)
            .expect("truth");
        let base = Dist::Lognormal {
            median: 30.0,
            sigma: 0.5,
        }
        .mean();
        assert!(close(truth, base, 1e-12));
        let seen = empirical(&s, "ai", "cycle_time", 0, 1000, 40);
        assert!(
            close(seen, truth, 0.03),
            "empirical {seen} vs truth {truth}"
        );
        // The estimate predicts the cycle time: their log correlation is clearly positive.
        let mut rng = StdRng::seed_from_u64(5);
        let pairs: Vec<(f64, f64)> = (0..4000)
            .map(|i| {
                let a = s.draw_attributes(&mut rng, i);
                let x: f64 = a["estimated_minutes"].parse().expect("a number");
                let draw = s.draw(&mut rng, i, "ai", &a).expect("draw");
                (x.ln(), draw.metrics[0].1.ln())
            })
            .collect();
        let n = count(pairs.len());
        let (mx, my) = (
            pairs.iter().map(|p| p.0).sum::<f64>() / n,
            pairs.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let (sxy, sxx, syy) = pairs.iter().fold((0.0, 0.0, 0.0), |(a, b, c), (x, y)| {
            (
                a + (x - mx) * (y - my),
                b + (x - mx).powi(2),
                c + (y - my).powi(2),
            )
        });
        // In logs, the correlation is 0.6 / sqrt(0.6² + 0.5²) ≈ 0.77.
        let r = sxy / (sxx * syy).sqrt();
        assert!((r - 0.768).abs() < 0.03, "correlation {r}");

        let err = scenario(serde_json::json!({"effort": {"attribute": "", "mean": -1}}))
            .expect_err("invalid");
        assert!(format!("{err:#}").contains("/effort/attribute"), "{err:#}");
    }

    #[test]
    fn ratio_metrics_are_never_fed() {
        let mut spec = spec();
        spec["metrics"]
            .as_array_mut()
            .expect("metrics")
            .push(serde_json::json!({
                "key": "cost_per_minute", "kind": "cost", "direction": "decrease",
                "role": "secondary", "ratio": {"numerator": "cost", "denominator": "cycle_time"}
            }));
        let s = scenario(serde_json::json!({"spec": spec.clone()})).expect("valid");
        assert_eq!(s.quantity_of("cost_per_minute"), None);
        let mut rng = StdRng::seed_from_u64(1);
        let a = s.draw_attributes(&mut rng, 0);
        let draw = s.draw(&mut rng, 0, "ai", &a).expect("draw");
        assert!(draw.metrics.iter().all(|(k, _)| k != "cost_per_minute"));
        let err =
            scenario(serde_json::json!({"spec": spec, "metrics": {"cost_per_minute": "cost"}}))
                .expect_err("a ratio takes no quantity");
        assert!(
            format!("{err:#}").contains("/metrics/cost_per_minute"),
            "{err:#}"
        );
    }

    #[test]
    fn metrics_default_to_quantities_by_kind() {
        let s = scenario(serde_json::json!({})).expect("valid");
        assert_eq!(s.quantity_of("cycle_time"), Some(Quantity::CycleTime));
        assert_eq!(s.quantity_of("escalated"), Some(Quantity::Escalated));
        assert_eq!(s.quantity_of("cost"), Some(Quantity::Cost));
        let err = scenario(serde_json::json!({"metrics": {"escalated": "cycle_time"}}))
            .expect_err("kind mismatch");
        assert!(format!("{err:#}").contains("/metrics/escalated"));
    }
}
