//! The experiment spec: a validated, normalized experiment definition (parsed once, with every default explicit).
//!
//! Why one file of about 900 lines: these are the spec's types, whose invariant-bearing fields
//! are private to this module so that only `parse` (a child) can build them; splitting the types
//! into sibling files would widen those fields to `pub(super)` and let any sibling build an
//! unvalidated spec. The parser itself lives in `parse.rs`, `parse/metrics.rs` and `walker.rs`.
//!
//! [`ExperimentSpec::parse`] is the only way to build a spec. It checks a JSON document against
//! every rule of the design and reports all problems at once, each with an RFC 6901 pointer.
//! The validated spec serializes to its *normalized* document: the same shape with every
//! default filled in. That document is what the store persists and what the API returns, and
//! deserializing it goes through `parse` again, so a stored spec is re-validated on read.
//!
//! Reading a stored document is lenient in one way only: specs stored before
//! `analysis.planned_units` existed say `"sequential": false` without it (false was the
//! default then, and the normalized document writes every default). Deserialization upgrades
//! such a document to `"sequential": true`, the safe default, instead of failing; the API and
//! CLI path ([`ExperimentSpec::parse`]) stays strict.
//!
//! Defaults (also stated as `default` keywords in `api-spec/experiment-spec.schema.json`):
//!
//! | field | default |
//! |---|---|
//! | `name` | the key |
//! | `hypothesis`, `owner` | absent |
//! | `unit` | `task` |
//! | `arms[].description` | absent |
//! | `coverage` | 1 |
//! | `targeting` | `{}` (everyone) |
//! | `metrics[].aggregate` | `sum` for `count` and `cost`, `mean` otherwise (none for a ratio metric) |
//! | `metrics[].covariate` / `ratio` / `cap` | absent |
//! | `metrics[].max_harm` | 0 for a guardrail (other roles have none) |
//! | `metrics[].description` | absent |
//! | `analysis.alpha` / `power` / `mde` | 0.05 / 0.8 / 0.05 (relative) |
//! | `analysis.sequential` / `sequential_tuning` | true / 5000 |
//! | `analysis.planned_units` | absent (required when `sequential` is false) |
//! | `analysis.correction` | `holm` |
//! | `analysis.auto_pause_on_harm` | false |
//! | `segments` | `[]` |
//! | `allocation.floor` / `warmup` / `update_every` / `discount` (Thompson) | 0.01 / 100 / 50 / 1.0 |
//! | `drift` | absent; when present: `reference_window` 500, `recent_window` 200, `page_hinkley` {`delta` 0.1, `lambda` 50}, `cusum` {`slack` 0.25, `threshold` 15}, `window_alpha` 0.001, `auto_rebaseline` false |
//! | `roi` | absent; when present: `cost_metric` / `duration_metric` the first metric of kind cost / duration that is not a ratio, `duration_unit` `minutes`, `currency` `USD`, `fixed_monthly_cost` 0 |
//! | `hash_seed` | the key |

pub(crate) mod parse;
pub(crate) mod walker;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::error::{SpecErrors, SpecProblem};

/// What an experiment randomizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Each task (ticket, claim, review) is randomized on its own.
    Task,
    /// All tasks of one customer share an arm.
    Customer,
    /// All tasks of one agent share an arm.
    Agent,
}

/// Whether an arm is the baseline every treatment is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArmRole {
    /// The comparison arm (for example the human-only workflow); exactly one per experiment.
    Baseline,
    /// An arm compared with the baseline (for example an AI-assisted workflow).
    Treatment,
}

/// One arm of an experiment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Arm {
    key: String,
    role: ArmRole,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl Arm {
    /// The arm's key (a slug, unique within the experiment).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Baseline or treatment.
    pub fn role(&self) -> ArmRole {
        self.role
    }

    /// A free-text description, if given.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// True for the baseline arm.
    pub fn is_baseline(&self) -> bool {
        self.role == ArmRole::Baseline
    }
}

/// The kind of values a metric takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// true/false (or 0/1), stored as 0.0/1.0.
    Binary,
    /// Any finite number.
    Continuous,
    /// A finite, non-negative time span.
    Duration,
    /// A finite, non-negative whole number.
    Count,
    /// A finite, non-negative amount of money.
    Cost,
}

impl MetricKind {
    /// The aggregate used when a metric does not name one: `sum` for counts and costs, `mean` otherwise.
    pub fn default_aggregate(self) -> Aggregate {
        match self {
            MetricKind::Count | MetricKind::Cost => Aggregate::Sum,
            MetricKind::Binary | MetricKind::Continuous | MetricKind::Duration => Aggregate::Mean,
        }
    }
}

/// Which way is better for a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Larger values are better.
    Increase,
    /// Smaller values are better.
    Decrease,
}

/// What a metric is for in the analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricRole {
    /// The decision metric; exactly one per experiment.
    Primary,
    /// A metric that must not get worse.
    Guardrail,
    /// A metric reported for context.
    Secondary,
}

/// How a unit's events are combined into its one value for a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// The sum of the unit's event values.
    Sum,
    /// The mean of the unit's event values.
    Mean,
    /// The value of the unit's most recently recorded event.
    Last,
    /// The largest of the unit's event values.
    Max,
}

/// One metric of an experiment.
///
/// A metric is either *reported* (outcomes carry its values, combined per unit by its
/// aggregate) or a *ratio* of two reported metrics (outcomes never carry it; its unit pair is
/// the numerator's and the denominator's unit values).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metric {
    key: String,
    kind: MetricKind,
    direction: Direction,
    role: MetricRole,
    /// `None` exactly for a ratio metric, which has no events of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    aggregate: Option<Aggregate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    covariate: Option<Covariate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio: Option<Ratio>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cap: Option<Cap>,
    /// `Some` exactly for a guardrail (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    max_harm: Option<f64>,
}

/// A metric's CUPED covariate: a numeric attribute the router sends at assignment.
#[derive(Clone, Debug, PartialEq, Serialize)]
struct Covariate {
    attribute: String,
}

/// Winsorization of a metric's event values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
struct Cap {
    max: f64,
}

/// The two reported metrics whose per-unit values make a ratio metric (for example cost per
/// resolved case: numerator `cost`, denominator `resolved`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ratio {
    numerator: String,
    denominator: String,
}

impl Ratio {
    /// The key of the numerator metric (a declared metric that is not a ratio).
    pub fn numerator(&self) -> &str {
        &self.numerator
    }

    /// The key of the denominator metric (a declared metric that is not a ratio).
    pub fn denominator(&self) -> &str {
        &self.denominator
    }
}

impl Metric {
    /// The metric's key (a slug, unique within the experiment).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The kind of values it takes.
    pub fn kind(&self) -> MetricKind {
        self.kind
    }

    /// Which way is better.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Primary, guardrail or secondary.
    pub fn role(&self) -> MetricRole {
        self.role
    }

    /// How a unit's events are combined (explicit or the kind's default).
    ///
    /// A ratio metric has no events of its own (its numerator's and denominator's aggregates
    /// apply); for it this is the kind's default, which nothing uses.
    pub fn aggregate(&self) -> Aggregate {
        self.aggregate
            .unwrap_or_else(|| self.kind.default_aggregate())
    }

    /// A free-text description, if given.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The attribute whose value at assignment is the metric's CUPED covariate, if any.
    ///
    /// The value is kept with the unit's assignment; a unit assigned without it counts with
    /// covariate 0. Never set on a ratio metric.
    pub fn covariate(&self) -> Option<&str> {
        self.covariate.as_ref().map(|c| c.attribute.as_str())
    }

    /// The numerator and denominator, when this is a ratio metric.
    pub fn ratio(&self) -> Option<&Ratio> {
        self.ratio.as_ref()
    }

    /// The winsorization cap (finite, > 0): event values above it are cut to it before folding.
    /// Never set on binary or ratio metrics.
    pub fn cap(&self) -> Option<f64> {
        self.cap.map(|c| c.max)
    }

    /// One event value after the cap: `min(value, cap)`, or the value itself without a cap.
    pub fn capped(&self, value: f64) -> f64 {
        match self.cap {
            Some(Cap { max }) => value.min(max),
            None => value,
        }
    }

    /// The relative harm a guardrail tolerates, in [0, 1); 0 for every other role.
    pub fn max_harm(&self) -> f64 {
        self.max_harm.unwrap_or(0.0)
    }

    /// Checks one reported value and converts it to the number the analysis uses.
    ///
    /// Binary metrics take `true`/`false` or `0`/`1` (returned as 0.0/1.0); durations, costs
    /// and counts must be finite and ≥ 0, counts also whole; continuous values must be finite.
    /// A ratio metric takes no values (outcomes send its numerator and denominator). A value
    /// above the metric's cap is accepted and returned as reported, so the log keeps what was
    /// sent; folding cuts it to the cap.
    pub fn value(&self, value: &serde_json::Value) -> Result<f64, String> {
        if let Some(ratio) = &self.ratio {
            return Err(format!(
                "{:?} is a ratio metric: send its numerator {:?} and denominator {:?} instead",
                self.key, ratio.numerator, ratio.denominator
            ));
        }
        parse::metric_value(self.kind, value)
    }
}

/// The fixed allocation policy: constant weights per arm.
#[derive(Clone, Debug, PartialEq)]
pub struct FixedAllocation {
    weights: Vec<(String, f64)>,
}

impl FixedAllocation {
    /// The weight of each arm, in the spec's arm order; the weights sum to 1 (±1e-9).
    pub fn weights(&self) -> &[(String, f64)] {
        &self.weights
    }
}

impl Serialize for FixedAllocation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Weights<'a>(&'a [(String, f64)]);
        impl Serialize for Weights<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.iter().map(|(k, w)| (k, w)))
            }
        }
        let mut s = serializer.serialize_struct("FixedAllocation", 1)?;
        s.serialize_field("weights", &Weights(&self.weights))?;
        s.end()
    }
}

/// The batched Thompson-sampling policy (see [`crate::thompson`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThompsonAllocation {
    reward: String,
    floor: f64,
    warmup: u64,
    update_every: u64,
    discount: f64,
}

impl ThompsonAllocation {
    /// The key of the metric whose values are the bandit's rewards (a declared metric).
    pub fn reward(&self) -> &str {
        &self.reward
    }

    /// The smallest weight any arm keeps, in [0, 1/arms]; default 0.01.
    pub fn floor(&self) -> f64 {
        self.floor
    }

    /// Rewards every arm must have before the weights leave uniform; default 100.
    pub fn warmup(&self) -> u64 {
        self.warmup
    }

    /// New rewards between two recomputations of the weights (≥ 1); default 50.
    pub fn update_every(&self) -> u64 {
        self.update_every
    }

    /// Factor in (0, 1] applied to older statistics at each recomputation; default 1.0 (no forgetting).
    pub fn discount(&self) -> f64 {
        self.discount
    }
}

/// How units are spread over arms.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum Allocation {
    /// Constant weights (an A/B/n test).
    Fixed(FixedAllocation),
    /// Weights that follow the posterior probability of each arm being best.
    Thompson(ThompsonAllocation),
}

impl Allocation {
    /// The policy's name as it appears in the spec and in results (`fixed` or `thompson`).
    pub fn policy(&self) -> &'static str {
        match self {
            Allocation::Fixed(_) => "fixed",
            Allocation::Thompson(_) => "thompson",
        }
    }

    /// The Thompson settings, when the policy is Thompson sampling.
    pub fn thompson(&self) -> Option<&ThompsonAllocation> {
        match self {
            Allocation::Thompson(t) => Some(t),
            Allocation::Fixed(_) => None,
        }
    }
}

/// Which units may enter the experiment: attribute → allowed values.
///
/// A unit enters only if, for every attribute listed, it has the attribute and its value is one
/// of the allowed values. A missing attribute makes the unit untargeted. No entries means everyone.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Targeting {
    rules: BTreeMap<String, BTreeSet<String>>,
}

impl Targeting {
    /// The rules, attribute → allowed values.
    pub fn rules(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.rules
    }

    /// True when a unit with these attributes is targeted.
    pub fn matches(&self, attributes: &BTreeMap<String, String>) -> bool {
        self.rules.iter().all(|(attribute, allowed)| {
            attributes
                .get(attribute)
                .is_some_and(|value| allowed.contains(value))
        })
    }
}

/// How p-values are adjusted across an experiment's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// No adjustment.
    None,
    /// Holm's step-down (family-wise error).
    Holm,
    /// Benjamini–Hochberg (false discovery rate).
    Bh,
}

/// Settings of the statistical analysis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Analysis {
    alpha: f64,
    power: f64,
    mde: f64,
    sequential: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    planned_units: Option<u64>,
    sequential_tuning: f64,
    correction: Correction,
    auto_pause_on_harm: bool,
}

impl Default for Analysis {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            power: 0.8,
            mde: 0.05,
            sequential: true,
            planned_units: None,
            sequential_tuning: 5000.0,
            correction: Correction::Holm,
            auto_pause_on_harm: false,
        }
    }
}

impl Analysis {
    /// Significance level in (0, 1); default 0.05.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// Target power in (0, 1); default 0.8.
    pub fn power(&self) -> f64 {
        self.power
    }

    /// Minimum detectable effect as a relative lift (> 0); default 0.05 (5 %).
    pub fn mde(&self) -> f64 {
        self.mde
    }

    /// Whether the decision uses always-valid sequential intervals (safe to peek); default true.
    ///
    /// When false, [`Analysis::planned_units`] is set: a fixed-horizon answer is final only
    /// once that many units have outcomes.
    pub fn sequential(&self) -> bool {
        self.sequential
    }

    /// The total number of units (all arms together) the experiment plans to analyse; always
    /// set when [`Analysis::sequential`] is false, optional otherwise.
    pub fn planned_units(&self) -> Option<u64> {
        self.planned_units
    }

    /// The tuning parameter τ of the sequential confidence sequences (> 0); default 5000.
    pub fn sequential_tuning(&self) -> f64 {
        self.sequential_tuning
    }

    /// The multiple-comparison correction; default Holm.
    pub fn correction(&self) -> Correction {
        self.correction
    }

    /// Whether a guardrail that the sequential test finds significantly worse pauses the experiment; default false.
    pub fn auto_pause_on_harm(&self) -> bool {
        self.auto_pause_on_harm
    }
}

/// Page–Hinkley settings, in units of the reference window's standard deviation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PageHinkleySettings {
    delta: f64,
    lambda: f64,
}

impl PageHinkleySettings {
    /// The magnitude of change tolerated per observation (δ ≥ 0), in reference sds; default 0.1.
    pub fn delta(&self) -> f64 {
        self.delta
    }

    /// The alarm threshold (λ > 0), in reference sds; default 50.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }
}

/// Two-sided CUSUM settings, in units of the reference window's standard deviation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CusumSettings {
    slack: f64,
    threshold: f64,
}

impl CusumSettings {
    /// The allowance k (≥ 0), in reference sds; default 0.25.
    pub fn slack(&self) -> f64 {
        self.slack
    }

    /// The decision threshold h (> 0), in reference sds; default 15.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }
}

/// Drift monitoring of selected metrics (per arm), and what to do on a detection.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftSpec {
    metrics: Vec<String>,
    reference_window: u64,
    recent_window: u64,
    page_hinkley: PageHinkleySettings,
    cusum: CusumSettings,
    window_alpha: f64,
    auto_rebaseline: bool,
}

impl DriftSpec {
    /// Keys of the monitored metrics (declared metrics, no duplicates, at least one).
    pub fn metrics(&self) -> &[String] {
        &self.metrics
    }

    /// Events per arm that form the reference (its mean and sd); default 500.
    pub fn reference_window(&self) -> u64 {
        self.reference_window
    }

    /// Size of the recent window compared with the reference; default 200.
    pub fn recent_window(&self) -> u64 {
        self.recent_window
    }

    /// Page–Hinkley settings (in reference sds).
    pub fn page_hinkley(&self) -> PageHinkleySettings {
        self.page_hinkley
    }

    /// CUSUM settings (in reference sds).
    pub fn cusum(&self) -> CusumSettings {
        self.cusum
    }

    /// Significance level of the windowed two-sample test, in (0, 1); default 0.001.
    pub fn window_alpha(&self) -> f64 {
        self.window_alpha
    }

    /// Whether a change in a treatment's effect starts a new analysis epoch by itself; default
    /// false (it is only proposed). Level detections (workload drift) never do.
    pub fn auto_rebaseline(&self) -> bool {
        self.auto_rebaseline
    }
}

/// The unit a duration metric is recorded in, for turning time saved into hours and money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurationUnit {
    /// Seconds.
    Seconds,
    /// Minutes.
    Minutes,
    /// Hours.
    Hours,
}

impl DurationUnit {
    /// How many of this unit make one hour.
    pub fn per_hour(self) -> f64 {
        match self {
            DurationUnit::Seconds => 3600.0,
            DurationUnit::Minutes => 60.0,
            DurationUnit::Hours => 1.0,
        }
    }
}

/// The numbers that turn lifts into money.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Roi {
    volume_per_month: f64,
    human_cost_per_hour: f64,
    fixed_monthly_cost: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_metric: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_metric: Option<String>,
    duration_unit: DurationUnit,
    currency: String,
}

impl Roi {
    /// Cases handled per month (finite, ≥ 0).
    pub fn volume_per_month(&self) -> f64 {
        self.volume_per_month
    }

    /// Fully loaded cost of one hour of human work (finite, ≥ 0).
    pub fn human_cost_per_hour(&self) -> f64 {
        self.human_cost_per_hour
    }

    /// What running the AI arm costs per month regardless of volume (hosting, licences,
    /// platform), finite and ≥ 0; default 0.
    pub fn fixed_monthly_cost(&self) -> f64 {
        self.fixed_monthly_cost
    }

    /// The cost metric (kind `cost`, not a ratio) used for cost per case; default: the first such metric.
    pub fn cost_metric(&self) -> Option<&str> {
        self.cost_metric.as_deref()
    }

    /// The duration metric (kind `duration`, not a ratio) used for hours saved; default: the first such metric.
    pub fn duration_metric(&self) -> Option<&str> {
        self.duration_metric.as_deref()
    }

    /// The unit of the duration metric; default minutes.
    pub fn duration_unit(&self) -> DurationUnit {
        self.duration_unit
    }

    /// ISO 4217 code of the money amounts (three capital letters); default `USD`.
    pub fn currency(&self) -> &str {
        &self.currency
    }
}

/// A validated experiment spec with every default filled in.
///
/// Built only by [`ExperimentSpec::parse`] (or deserialization, which calls it after
/// upgrading a stored document, see the module documentation). Invariants that
/// hold for every value: the key and all arm/metric keys are slugs; there are ≥ 2 arms with
/// unique keys, exactly one of them the baseline; fixed weights name exactly the arms and sum
/// to 1; exactly one metric is primary; every metric reference (Thompson reward, drift, ROI,
/// ratio parts) names a declared metric of a suitable kind that is not a ratio; a fixed-horizon
/// analysis states its planned units; every number is finite and in range.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExperimentSpec {
    key: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hypothesis: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    unit: Unit,
    arms: Vec<Arm>,
    allocation: Allocation,
    coverage: f64,
    targeting: Targeting,
    metrics: Vec<Metric>,
    analysis: Analysis,
    segments: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    drift: Option<DriftSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roi: Option<Roi>,
    hash_seed: String,
    #[serde(skip)]
    baseline: usize,
    /// The hash state after the seed, computed once (derived from `hash_seed`).
    #[serde(skip)]
    seed_prefix: crate::hash::SeedPrefix,
    #[serde(skip)]
    primary: usize,
}

impl ExperimentSpec {
    /// Validates a JSON document and builds the spec, or lists every problem with its pointer.
    pub fn parse(document: &serde_json::Value) -> Result<ExperimentSpec, SpecErrors> {
        parse::spec(document)
    }

    /// Parses JSON text, then validates it as [`ExperimentSpec::parse`] does.
    ///
    /// Text that is not JSON gives one problem at the document root.
    pub fn parse_str(text: &str) -> Result<ExperimentSpec, SpecErrors> {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(document) => Self::parse(&document),
            Err(e) => {
                let mut errors = SpecErrors::default();
                errors.push("", format!("not valid JSON: {e}"));
                Err(errors)
            }
        }
    }

    /// The normalized document (every default explicit), as persisted and returned by the API.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The experiment key (a slug).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// A human-readable name; defaults to the key.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hypothesis under test, if given.
    pub fn hypothesis(&self) -> Option<&str> {
        self.hypothesis.as_deref()
    }

    /// Who owns the experiment, if given.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// What is randomized; defaults to `task`.
    pub fn unit(&self) -> Unit {
        self.unit
    }

    /// Every arm, in the spec's order (the baseline included).
    pub fn arms(&self) -> &[Arm] {
        &self.arms
    }

    /// The baseline arm.
    pub fn baseline(&self) -> &Arm {
        &self.arms[self.baseline]
    }

    /// The position of the baseline arm in [`ExperimentSpec::arms`].
    pub fn baseline_index(&self) -> usize {
        self.baseline
    }

    /// The treatment arms, in the spec's order.
    pub fn treatments(&self) -> impl Iterator<Item = &Arm> {
        self.arms.iter().filter(|a| !a.is_baseline())
    }

    /// The arm with this key.
    pub fn arm(&self, key: &str) -> Option<&Arm> {
        self.arms.iter().find(|a| a.key == key)
    }

    /// The position of the arm with this key in [`ExperimentSpec::arms`].
    pub fn arm_index(&self, key: &str) -> Option<usize> {
        self.arms.iter().position(|a| a.key == key)
    }

    /// Every metric, in the spec's order.
    pub fn metrics(&self) -> &[Metric] {
        &self.metrics
    }

    /// The metric with this key.
    pub fn metric(&self, key: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.key == key)
    }

    /// The primary metric.
    pub fn primary(&self) -> &Metric {
        &self.metrics[self.primary]
    }

    /// The allocation policy and its settings.
    pub fn allocation(&self) -> &Allocation {
        &self.allocation
    }

    /// The share of targeted units that enter the experiment, in [0, 1]; defaults to 1.
    pub fn coverage(&self) -> f64 {
        self.coverage
    }

    /// Which units may enter; defaults to everyone.
    pub fn targeting(&self) -> &Targeting {
        &self.targeting
    }

    /// The analysis settings.
    pub fn analysis(&self) -> &Analysis {
        &self.analysis
    }

    /// Attribute names results are broken down by; defaults to none.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Drift monitoring settings, if the spec asks for it.
    pub fn drift(&self) -> Option<&DriftSpec> {
        self.drift.as_ref()
    }

    /// ROI settings, if given.
    pub fn roi(&self) -> Option<&Roi> {
        self.roi.as_ref()
    }

    /// The seed of the assignment hash; defaults to the key.
    pub fn hash_seed(&self) -> &str {
        &self.hash_seed
    }

    /// The hash state after the seed, so that assignment hashes only the unit id.
    pub fn seed_prefix(&self) -> crate::hash::SeedPrefix {
        self.seed_prefix
    }

    /// Checks a reported value of metric `metric_key` and converts it to the number the analysis uses.
    ///
    /// Binary metrics take `true`/`false` or `0`/`1`; durations, costs and counts must be
    /// finite and ≥ 0, counts also whole; continuous values must be finite. An unknown metric
    /// is an error, and so is a value for a ratio metric (outcomes send its numerator and
    /// denominator). A value above a cap is accepted as reported (see [`Metric::value`]).
    /// The message has no pointer; callers put it at the value's position.
    pub fn validate_metric_value(
        &self,
        metric_key: &str,
        value: &serde_json::Value,
    ) -> Result<f64, String> {
        match self.metric(metric_key) {
            Some(metric) => metric.value(value),
            None => Err(format!(
                "unknown metric {metric_key:?}; the experiment declares {}",
                self.metrics
                    .iter()
                    .map(|m| m.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

impl<'de> Deserialize<'de> for ExperimentSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let document = serde_json::Value::deserialize(deserializer)?;
        ExperimentSpec::parse(&parse::upgrade_stored(document)).map_err(serde::de::Error::custom)
    }
}

/// Is `s` a slug: `[a-z0-9][a-z0-9_-]{0,63}`?
pub fn is_slug(s: &str) -> bool {
    let bytes = s.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest.len() <= 63
                && rest.iter().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-'
                })
        }
        None => false,
    }
}

#[cfg(test)]
mod tests;
