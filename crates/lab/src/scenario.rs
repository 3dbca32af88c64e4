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
//!
//! This file holds the model and its draws and truth; `parse.rs` reads a document into it,
//! `variation.rs` reads what varies the model (segments, effort, drift, mix changes) and
//! `validate.rs` holds the pointer-reporting readers both use.

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

mod parse;
mod validate;
mod variation;

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

impl Scenario {
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

#[cfg(test)]
mod tests;
